import { createHash } from 'node:crypto';
import path from 'node:path';
import type { OwnerLabels } from '@worker-manager/plugin-sdk';

const hash = (text: string, length: number): string => createHash('sha256').update(text).digest('hex').slice(0, length);

/** Label and annotation keys of one instance, under the configured prefix. */
export class Keys {
  readonly host: string;
  readonly instance: string;
  readonly workerId: string;
  readonly createdAt: string;
  readonly correlationId: string;
  readonly tenant: string;
  readonly restartCount: string;
  /** Set by the plugin before it deletes a pod itself: `terminate` or `restart`, so the watcher reports no loss. */
  readonly stop: string;
  /** A final state the plugin decided (pending timeout, deadline backstop), kept on the pod until terminate. */
  readonly failure: string;
  /** The finalizer that keeps a pod the plugin failed, so its final state stays readable until terminate. */
  readonly finalizer: string;
  /** JSON `[name, version, strategy][]` of the worker's secret mounts: names, never values. */
  readonly secrets: string;
  /** The worker's network isolation (`Default`, `Strict`, `Complete`): the last two have a NetworkPolicy. */
  readonly isolation: string;

  constructor(prefix: string) {
    this.host = `${prefix}/host`;
    this.instance = `${prefix}/instance`;
    this.workerId = `${prefix}/worker-id`;
    this.createdAt = `${prefix}/created-at`;
    this.correlationId = `${prefix}/correlation-id`;
    this.tenant = `${prefix}/tenant`;
    this.restartCount = `${prefix}/restart-count`;
    this.stop = `${prefix}/stop`;
    this.failure = `${prefix}/failure`;
    this.finalizer = `${prefix}/final-state`;
    this.secrets = `${prefix}/secrets`;
    this.isolation = `${prefix}/isolation`;
  }
}

/** Pod and Secret names of one instance: unique per host and instance, so instances may share a namespace. */
export class Names {
  readonly #scope: string;
  constructor(owner: OwnerLabels) {
    this.#scope = hash(`${owner['worker-manager/host']}\0${owner['worker-manager/instance']}`, 8);
  }
  pod(workerId: string): string {
    return `wm-${this.#scope}-${workerId}`;
  }
  secret(workerId: string): string {
    return `wm-${this.#scope}-${workerId}-secrets`;
  }
  networkPolicy(workerId: string): string {
    return `wm-${this.#scope}-${workerId}-isolation`;
  }
}

/** The container name inside every worker pod. */
export const CONTAINER = 'worker';

/** Secret key of an env mount: env names are valid Secret keys as they are. */
export const envKey = (envName: string): string => `env.${envName}`;
/** Secret key of a file mount: its name and path, hashed (a path has characters a key may not). */
export const fileKey = (name: string, specPath: string): string => `file.${hash(`${name}\0${specPath}`, 24)}`;

/** Where a file mount appears in the container: relative paths under `mountPath`. */
export function secretFilePath(mountPath: string, p: string): string {
  return path.posix.normalize(p.startsWith('/') ? p : path.posix.join(mountPath, p));
}
