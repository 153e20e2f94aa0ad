import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import type { VaultResponseFailure } from './vaultError.ts';
import type { VaultSession } from './VaultSession.ts';

/** One version in a key's metadata (`GET <mount>/metadata/<path>`). */
export interface KvVersionMeta {
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

/** A key's metadata. */
export interface KvMetadata {
  current_version: number;
  custom_metadata: Record<string, string> | null;
  versions: Record<string, KvVersionMeta>;
}

/** What reading one version gave. */
export type KvRead =
  /**
   * `customMetadata`: the key's custom metadata as the same answer carried it (Vault 1.9 and later put it in every
   * read); absent when the server did not send it.
   */
  | { kind: 'data'; data: Record<string, unknown>; version: number; customMetadata?: Record<string, string> | null }
  | { kind: 'deleted'; version: number; deletionTime: string }
  | { kind: 'destroyed'; version: number }
  | { kind: 'missing' };

/** A path segment: what a secret name may be made of so that it is one Vault path, the same on every server. */
const SEGMENT = /^[A-Za-z0-9_@=,+-][A-Za-z0-9_.@=,+-]*$/;

/** What {@link KvClient.write} answers when `cas` no longer matches: another writer made a version first. */
export class CasMismatch {
  readonly casMismatch = true;
}

/**
 * The KV version 2 requests the plugin makes, through node-vault's generic read/write (it has no KV v2 helpers
 * besides destroy), with the mount and path prefix applied.
 */
export class KvClient {
  readonly #session: VaultSession;
  readonly #mount: string;
  readonly #prefix: string;

  constructor(config: ResolvedConfig, session: VaultSession) {
    this.#session = session;
    this.#mount = config.mount;
    this.#prefix = config.pathPrefix === undefined ? '' : `${config.pathPrefix}/`;
  }

  /** The path of `name` under `<mount>/<kind>/`; a name that is not a clean Vault path is refused. */
  path(kind: 'data' | 'metadata' | 'destroy' | 'undelete', name: string): string {
    const segments = name.split('/');
    if (!segments.every((s) => SEGMENT.test(s))) {
      throw new WorkerManagerError('WM_ERR_VALIDATION', `secret name '${name}' is not a Vault path: use segments of letters, digits and _ . @ = , + - separated by single '/', none starting with '.'`, {
        details: { name, reason: 'bad-name' },
      });
    }
    return `${this.#mount}/${kind}/${this.#prefix}${segments.map(encodeURIComponent).join('/')}`;
  }

  async metadata(name: string): Promise<KvMetadata | undefined> {
    const p = this.path('metadata', name);
    const body = (await this.#session.call<unknown>({
      operation: 'read metadata',
      path: p,
      idempotent: true,
      send: (c) => c.read(p),
      answer: (f) => (isPlain404(f) ? { value: undefined } : undefined),
    })) as { data: KvMetadata } | undefined;
    return body?.data;
  }

  /** Reads one version; without `version`, the key's latest version (Vault's `current_version`). */
  async read(name: string, version?: number): Promise<KvRead> {
    const p = this.path('data', name);
    return this.#session.call<KvRead>({
      operation: 'read',
      path: p,
      idempotent: true,
      send: async (c) => {
        const body = (await c.read(version === undefined ? p : `${p}?version=${version}`)) as {
          data: { data: Record<string, unknown>; metadata: { version: number; custom_metadata?: Record<string, string> | null } };
        };
        const { metadata } = body.data;
        return { kind: 'data', data: body.data.data, version: metadata.version, ...('custom_metadata' in metadata ? { customMetadata: metadata.custom_metadata ?? null } : {}) };
      },
      answer: (f) => {
        if (f.status !== 404) return undefined;
        // A deleted or destroyed version answers 404 with the full envelope: data null, metadata telling which.
        const meta = (f.body as { data?: { metadata?: { destroyed?: unknown; deletion_time?: unknown; version?: unknown } } } | null)?.data?.metadata;
        const which = version ?? (typeof meta?.version === 'number' ? meta.version : 0);
        if (meta?.destroyed === true) return { value: { kind: 'destroyed', version: which } };
        if (typeof meta?.deletion_time === 'string' && meta.deletion_time !== '') return { value: { kind: 'deleted', version: which, deletionTime: meta.deletion_time } };
        return isPlain404(f) ? { value: { kind: 'missing' } } : undefined;
      },
    });
  }

  /** Writes a new version only if the key's current version is still `cas` (0: only if the key is absent). */
  async write(name: string, data: Record<string, string>, cas: number): Promise<{ version: number; created_time: string } | CasMismatch> {
    const p = this.path('data', name);
    return this.#session.call<{ version: number; created_time: string } | CasMismatch>({
      operation: 'write',
      path: p,
      idempotent: false,
      send: async (c) => ((await c.write(p, { data, options: { cas } })) as { data: { version: number; created_time: string } }).data,
      answer: (f) => (f.status === 400 && f.errors.some((e) => e.includes('check-and-set parameter did not match')) ? { value: new CasMismatch() } : undefined),
    });
  }

  /**
   * Replaces the key's custom metadata (Vault has no check-and-set here: callers serialise their writes per key).
   * Other metadata fields are not sent, so Vault leaves them as they are.
   */
  async writeCustomMetadata(name: string, custom: Record<string, string>): Promise<void> {
    const p = this.path('metadata', name);
    await this.#session.call({ operation: 'write metadata', path: p, idempotent: false, send: (c) => c.write(p, { custom_metadata: custom }) });
  }

  async destroy(name: string, versions: number[]): Promise<void> {
    const p = this.path('destroy', name);
    await this.#session.call({ operation: 'destroy', path: p, idempotent: true, send: (c) => c.write(p, { versions }) });
  }

  async undelete(name: string, versions: number[]): Promise<void> {
    const p = this.path('undelete', name);
    await this.#session.call({ operation: 'undelete', path: p, idempotent: true, send: (c) => c.write(p, { versions }) });
  }
}

/** 404 `{"errors":[]}`: no such key or version (a missing mount says `no handler for route`). */
function isPlain404(f: VaultResponseFailure): boolean {
  return f.status === 404 && f.errors.length === 0;
}
