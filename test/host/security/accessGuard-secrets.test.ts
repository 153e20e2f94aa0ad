import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccessGuard, type SecretOwnership } from '../../../host/src/security/authn/AccessGuard.ts';
import { LocalAdminAuthenticator } from '../../../host/src/security/authn/LocalAdminAuthenticator.ts';
import { CedarAuthorizer } from '../../../host/src/security/authz/adapters/CedarAuthorizer.ts';
import type { AuditEntry } from '../../../host/src/security/audit/AuditSink.ts';
import { policiesDir, principal, schemaFile } from './authzFixtures.ts';

// The broker's tenant rules as the guard sees them: `team-a/*` belongs to team-a, everything else to `default`.
const ownership: SecretOwnership = {
  credentialsFor: (ref) => ref.credentials ?? 'secrets',
  tenantOf: (_credentials, name) => (name.startsWith('team-a/') ? 'team-a' : 'default'),
};

describe('AccessGuard on secret actions', () => {
  const audit: AuditEntry[] = [];
  let authorizer: CedarAuthorizer;
  let guard: AccessGuard;
  before(async () => {
    authorizer = new CedarAuthorizer({ policiesDir, schemaFile });
    await authorizer.start();
    const authenticator = new LocalAdminAuthenticator({ stateDir: await mkdtemp(path.join(os.tmpdir(), 'wm-guard-')) });
    guard = new AccessGuard({ authenticator, authorizer, secrets: ownership, audit: { record: async (e) => void audit.push(e) } });
  });
  after(() => authorizer.stop());

  it('lets a tenant read the versions of its own secret, which the shipped tenant policy allows only once the owner is known', async () => {
    const alice = principal({ tenant: 'team-a' });
    const grant = await guard.check({ principal: alice, action: 'secret:read', resource: { type: 'Secret', id: 'team-a/db' }, channel: 'api' });
    assert.equal(grant.decision.decision, 'allow');
    assert.deepEqual(grant.decision.policies, ['tenant-secret-read']);
  });

  it("denies another tenant's secret, and audits the deny with the resolved resource", async () => {
    const bob = principal({ id: 'bob', tenant: 'team-b' });
    await assert.rejects(
      guard.check({ principal: bob, action: 'secret:read', resource: { type: 'Secret', id: 'team-a/db' }, channel: 'api' }),
      (e: Error & { code?: string }) => e.code === 'WM_ERR_AUTHORIZATION',
    );
    const last = audit.at(-1);
    assert.equal(last?.decision, 'deny');
    assert.equal(last?.resource, 'Secret::team-a/db');
  });

  it('gives rotation to security_admin of the owning tenant only', async () => {
    const admin = principal({ id: 'sec', tenant: 'team-a', roles: ['security_admin'] });
    const plain = principal({ id: 'dev', tenant: 'team-a' });
    const ok = await guard.check({ principal: admin, action: 'secret:rotate', resource: { type: 'Secret', id: 'team-a/db' }, channel: 'api' });
    assert.equal(ok.decision.decision, 'allow');
    await assert.rejects(guard.check({ principal: plain, action: 'secret:rotate', resource: { type: 'Secret', id: 'team-a/db' }, channel: 'api' }));
    await assert.rejects(guard.check({ principal: admin, action: 'secret:rotate', resource: { type: 'Secret', id: 'other/db' }, channel: 'api' }));
  });
});
