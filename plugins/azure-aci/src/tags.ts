import { createHash } from 'node:crypto';
import { WorkerManagerError, type OwnerLabels, type RuntimeSpec, type SecretMount } from '@worker-manager/plugin-sdk';

/**
 * Tags the plugin puts on every container group. ARM refuses `/` (and `< > % & \ ?`) in tag names, so the owner labels
 * (`worker-manager/host`) and the spec's labels (`conformance/worker`) cannot be tags as they are: owner facts get
 * tags of their own, and each spec label becomes `wml.<base64url of its key>`, which decodes back losslessly.
 */
export const TAG = {
  host: 'wm-host',
  instance: 'wm-instance',
  workerId: 'wm-worker-id',
  specHash: 'wm-spec-hash',
  createdAt: 'wm-created-at',
} as const;
const LABEL_TAG = 'wml.';
/** ARM allows 50 tags per resource; the plugin's own take the rest. */
export const MAX_SPEC_LABELS = 50 - Object.keys(TAG).length;

/** Tags of a new worker's container group. */
export function workerTags(owner: OwnerLabels, workerId: string, spec: RuntimeSpec, specHash: string, createdAt: string): Record<string, string> {
  const labels = Object.entries(spec.labels ?? {});
  if (labels.length > MAX_SPEC_LABELS) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', `worker '${workerId}' has ${labels.length} labels; Azure tags allow at most ${MAX_SPEC_LABELS} besides the plugin's own`, {
      details: { workerId, labels: labels.length, max: MAX_SPEC_LABELS },
    });
  }
  return {
    [TAG.host]: owner['worker-manager/host'],
    [TAG.instance]: owner['worker-manager/instance'],
    [TAG.workerId]: workerId,
    [TAG.specHash]: specHash,
    [TAG.createdAt]: createdAt,
    ...Object.fromEntries(labels.map(([k, v]) => [`${LABEL_TAG}${Buffer.from(k).toString('base64url')}`, v])),
  };
}

/** Whether a container group belongs to this host and instance. */
export const isOwned = (tags: Record<string, string> | undefined, owner: OwnerLabels): boolean =>
  tags?.[TAG.host] === owner['worker-manager/host'] && tags[TAG.instance] === owner['worker-manager/instance'] && tags[TAG.workerId] !== undefined;

/** The worker's labels as reported: the spec's, decoded, and the owner labels. */
export function labelsOf(tags: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags ?? {})) {
    if (k.startsWith(LABEL_TAG)) out[Buffer.from(k.slice(LABEL_TAG.length), 'base64url').toString('utf8')] = v;
  }
  const host = tags?.[TAG.host];
  const instance = tags?.[TAG.instance];
  if (host !== undefined) out['worker-manager/host'] = host;
  if (instance !== undefined) out['worker-manager/instance'] = instance;
  return out;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** Tells a repeated create from a different one: the spec and the secret mounts' names, never their values. */
export function specHashOf(spec: RuntimeSpec, secrets: readonly SecretMount[]): string {
  const mounts = secrets.map((m) => (m.strategy === 'env' ? { name: m.name, env: m.envName } : { name: m.name, strategy: m.strategy }));
  return createHash('sha256').update(canonical({ spec, mounts })).digest('hex').slice(0, 32);
}

/**
 * The container group's name: a hash of host, instance and worker id, so a repeated create (from any thread, after any
 * restart) finds the same group, and two instances sharing a resource group never collide. ARM allows 63 characters
 * of `[a-z0-9-]`.
 */
export function groupName(prefix: string, owner: OwnerLabels, workerId: string): string {
  const hash = createHash('sha256').update(`${owner['worker-manager/host']}\n${owner['worker-manager/instance']}\n${workerId}`).digest('hex').slice(0, 24);
  return `${prefix}-${hash}`;
}
