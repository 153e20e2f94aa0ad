/**
 * Subject catalog (seed 003, table 11) under a configurable prefix. Kept in one place so that adapters,
 * publishers and subscribers cannot drift.
 */
export const SUBJECT_STEMS = {
  workerCreated: 'worker.created',
  workerStateChanged: 'worker.state_changed',
  workerTerminated: 'worker.terminated',
  workerFailed: 'worker.failed',
  secretRotated: 'secret.rotated',
  secretRotationFailed: 'secret.rotation_failed',
  authGranted: 'security.auth.granted',
  authDenied: 'security.auth.denied',
  pluginCrashed: 'plugin.crashed',
  pluginQuarantined: 'plugin.quarantined',
} as const;

/** A well-known event name. */
export type SubjectName = keyof typeof SUBJECT_STEMS;

/** Subjects under one prefix. */
export interface Subjects {
  readonly prefix: string;
  of(name: SubjectName): string;
  /** Command subject for a worker operation: `<prefix>.worker.cmd.<op>`. */
  command(operation: string): string;
  /** CloudEvents `type` for a well-known event. */
  typeOf(name: SubjectName): string;
  /**
   * Where a consumer's dead letters go: `dlq.<prefix>.<consumer>`. Outside the prefix on purpose, so a `<prefix>.>`
   * subscriber does not receive (and possibly fail on) the dead letters of others.
   */
  deadLetter(consumer: string): string;
  /**
   * Where a host's audit chain heads go: `audit.<prefix>.head.<hostId>`. Outside the prefix too, so a `<prefix>.>`
   * subscriber is not handed one event per audit write.
   */
  auditHead(hostId: string): string;
}

/** CloudEvents `type` of a dead-letter event. */
export const DEAD_LETTER_TYPE = 'dev.worker-manager.bus.dead_letter';

/** CloudEvents `type` of an audit chain head. */
export const AUDIT_HEAD_TYPE = 'dev.worker-manager.audit.head';

/** Builds the subject set for a prefix (default `ci`). */
export function subjectsFor(prefix: string): Subjects {
  return {
    prefix,
    of: (name) => `${prefix}.${SUBJECT_STEMS[name]}`,
    command: (operation) => `${prefix}.worker.cmd.${operation}`,
    typeOf: (name) => `dev.worker-manager.${SUBJECT_STEMS[name]}`,
    deadLetter: (consumer) => `dlq.${prefix}.${consumer}`,
    auditHead: (hostId) => `audit.${prefix}.head.${hostId}`,
  };
}

/**
 * NATS subject matching: tokens split on `.`, `*` matches one token, `>` (last) matches one or more. The memory
 * adapter uses it so that patterns mean the same thing embedded and in production.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>') return i === p.length - 1 && s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return p.length === s.length;
}

/** True when every subject `inner` matches is also matched by `outer` (both may hold wildcards). */
export function subjectIsSubset(inner: string, outer: string): boolean {
  const p = inner.split('.');
  const q = outer.split('.');
  for (let i = 0; ; i++) {
    if (i === q.length) return i === p.length;
    if (q[i] === '>') return i < p.length;
    if (i === p.length || p[i] === '>') return false;
    if (q[i] === '*') continue;
    if (p[i] === '*' || p[i] !== q[i]) return false;
  }
}

/** True when some subject matches both patterns. */
export function subjectsIntersect(a: string, b: string): boolean {
  const p = a.split('.');
  const q = b.split('.');
  for (let i = 0; ; i++) {
    if (i === p.length || i === q.length) return p.length === q.length;
    if (p[i] === '>' || q[i] === '>') return true;
    if (p[i] !== '*' && q[i] !== '*' && p[i] !== q[i]) return false;
  }
}
