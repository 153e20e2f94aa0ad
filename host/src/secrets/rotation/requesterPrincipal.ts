import type { AuditEntry } from '../../security/audit/AuditSink.ts';

/**
 * The audit principal of a rotation's requester. The engine gets only the requester id (the API passes the caller's
 * principal id; timers and events run as `host:<id>`), so kind and source are inferred from the id's form.
 */
export function requesterPrincipal(requester: string, tenant: string | undefined): AuditEntry['principal'] {
  const base = tenant === undefined ? {} : { tenant };
  if (requester.startsWith('host:')) return { id: requester, kind: 'service', source: 'host', ...base };
  if (requester === 'local-admin') return { id: requester, kind: 'user', source: 'local-admin', ...base };
  if (requester === 'anonymous') return { id: requester, kind: 'user', source: 'anonymous', ...base };
  return { id: requester, kind: 'user', source: 'oidc', ...base };
}
