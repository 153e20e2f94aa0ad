import { WorkerManagerError, type SecretMount, type SecretPayload, type SecretRef } from '@worker-manager/plugin-sdk';

/** An environment variable name derived from a secret or key name: other characters become `_`, upper case. */
export function envNameFrom(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, '_').toUpperCase();
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/**
 * The part of a payload a ref asks for: the whole payload, or the `keys` of a key/value map. Errors name the secret,
 * its version and the missing keys, never a value.
 */
export function selectKeys(ref: SecretRef, version: string, payload: SecretPayload): SecretPayload {
  if (ref.keys === undefined) return payload;
  if (typeof payload === 'string') {
    throw new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${ref.name}' version ${version} is a string: keys selects from a key/value secret`, {
      details: { name: ref.name, version },
    });
  }
  const missing = ref.keys.filter((k) => !Object.hasOwn(payload, k));
  if (missing.length > 0) {
    throw new WorkerManagerError('WM_ERR_SECRET_INVALID_FORMAT', `secret '${ref.name}' version ${version} has no key ${missing.map((k) => `'${k}'`).join(', ')}`, {
      details: { name: ref.name, version, missing },
    });
  }
  return Object.fromEntries(ref.keys.map((k) => [k, payload[k] as string]));
}

/**
 * Mount instructions for one resolved ref. env: the string in `envName` (default: the secret name as a variable
 * name), or one variable per key of a map (`<envName>_<KEY>` with an envName, else `<KEY>`). file/volume: the string,
 * or the JSON of the map, at `path` (default: the secret name).
 */
export function secretMounts(ref: SecretRef, version: string, payload: SecretPayload): SecretMount[] {
  const selected = selectKeys(ref, version, payload);
  if (ref.mount !== 'env') {
    const value = typeof selected === 'string' ? selected : JSON.stringify(selected);
    return [{ strategy: ref.mount, name: ref.name, version, path: ref.path ?? ref.name, value }];
  }
  if (typeof selected === 'string') return [{ strategy: 'env', name: ref.name, version, envName: ref.envName ?? envNameFrom(ref.name), value: selected }];
  return Object.keys(selected).sort().map((key) => ({
    strategy: 'env' as const,
    name: ref.name,
    version,
    envName: ref.envName === undefined ? envNameFrom(key) : `${ref.envName}_${envNameFrom(key)}`,
    value: selected[key] as string,
  }));
}

/** Refuses two mounts of one worker that would land on the same variable or file (one would silently win). */
export function assertDistinctTargets(mounts: readonly SecretMount[]): void {
  const seen = new Map<string, string>();
  for (const m of mounts) {
    const target = m.strategy === 'env' ? `env ${m.envName}` : `file ${m.path.replace(/^\/+/, '')}`;
    const other = seen.get(target);
    if (other !== undefined) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `secrets '${other}' and '${m.name}' both mount to ${target}`, { details: { target, secrets: [other, m.name] } });
    }
    seen.set(target, m.name);
  }
}
