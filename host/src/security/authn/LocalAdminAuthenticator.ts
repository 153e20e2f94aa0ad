import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../observability/logger.ts';
import type { Principal } from '../Principal.ts';
import { authFailure } from './authFailure.ts';
import { bearerToken, type Authenticator } from './Authenticator.ts';

/** File name of the local admin token, inside the host state dir. */
export const ADMIN_TOKEN_FILE = 'admin.token';

/** Where a host with this state dir writes its local admin token. */
export function adminTokenPath(stateDir: string): string {
  return path.join(stateDir, ADMIN_TOKEN_FILE);
}

/** The principal of the local admin token. */
export const LOCAL_ADMIN: Readonly<Principal> = Object.freeze({ kind: 'user', id: 'local-admin', roles: ['admin'], scopes: [], source: 'local-admin' });

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * The embedded default: a random token made at each start, written to `<stateDir>/admin.token` readable only by the
 * host's user (0600), and the only credential accepted. Whoever can read that file is the local administrator, as with
 * a Docker socket. A restart makes a new token, so a copied one stops working.
 */
export class LocalAdminAuthenticator implements Authenticator {
  readonly mode = 'local';
  readonly file: string;
  readonly #log: Logger | undefined;
  #digest: Buffer | undefined;

  constructor(deps: { stateDir: string; logger?: Logger }) {
    this.file = adminTokenPath(deps.stateDir);
    this.#log = deps.logger?.child({ component: 'authn' });
  }

  async start(): Promise<void> {
    if (this.#digest !== undefined) return;
    const token = randomBytes(32).toString('base64url');
    await mkdir(path.dirname(this.file), { recursive: true });
    // Written to a fresh 0600 file then renamed over the old one: the token is never readable by others, even for an
    // instant, and an existing file with looser permissions is replaced rather than reused.
    const temp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(`${token}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await chmod(temp, 0o600);
      await rename(temp, this.file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    this.#digest = digest(token);
    this.#log?.info({ file: this.file }, 'local admin token written (send it as Authorization: Bearer <contents>)');
  }

  async stop(): Promise<void> {
    this.#digest = undefined;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const token = bearerToken(authorization);
    if (token === undefined) throw authFailure('missing', `no bearer token: send Authorization: Bearer <contents of ${ADMIN_TOKEN_FILE}>`);
    if (token === null) throw authFailure('malformed', 'the Authorization header is not a bearer token');
    // Digests have one length, so the comparison takes the same time whatever the caller sent.
    if (this.#digest === undefined || !timingSafeEqual(digest(token), this.#digest)) throw authFailure('invalid_token', 'the token is not the local admin token');
    return { ...LOCAL_ADMIN, roles: [...LOCAL_ADMIN.roles], scopes: [] };
  }
}
