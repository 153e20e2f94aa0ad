/**
 * The protocol doubles of the credential backends for credentials.bench.ts, run in a child process of their own.
 *
 * Why a separate process: a real Vault, Secrets Manager or Keycloak does its work on another machine, not on the
 * host's event loop. In the bench process the doubles' request handling would run on the same thread as the host
 * (broker, rotation engine, process provider) and as the raw client the broker is compared with, and be counted as
 * theirs.
 *
 * As a child (`node <loader flags> credentialDoubles.ts <dir>`): starts the Vault double (KV v2 at `secret/`, policy
 * `wm` on prefix `wm`, a token with it written to `<dir>/vault-token`, mode 0600), the Secrets Manager double (one
 * principal, the key pair written to `<dir>/aws-keys.json`, mode 0600) and the Keycloak double (realm `ci` with the
 * secret-rotation executor on, an admin client with manage-clients whose secret is written to
 * `<dir>/keycloak-admin-secret`, mode 0600, and the clients {@link KEYCLOAK_CLIENTS}), prints one JSON line with their
 * addresses (addresses only: credentials go through files, never through stdout), and exits when its stdin closes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startSecretsManagerDouble } from '../doubles/awsSecretsManager.ts';
import { startKeycloakDouble } from '../doubles/keycloakAdmin.ts';
import { VaultDouble } from '../doubles/vault.ts';

/** The Keycloak clients: the admin client the plugin and the raw client use, and one client per measure. */
export const KEYCLOAK_CLIENTS = { admin: 'wm-bench-admin', resolve: 'bench-resolve', rotate: 'bench-rotate' } as const;

/** Where the doubles listen, and the files holding what a client needs to authenticate. */
export interface CredentialDoubles {
  vault: { address: string; tokenFile: string; pathPrefix: string };
  aws: { url: string; region: string; keysFile: string };
  keycloak: { baseUrl: string; realm: string; issuer: string; adminSecretFile: string };
  /** Stops the child (closing its stdin). */
  stop(): Promise<void>;
}

/** AWS static keys, as read back from the keys file. */
export interface AwsKeys {
  accessKeyId: string;
  secretAccessKey: string;
}

const self = fileURLToPath(import.meta.url);
const PATH_PREFIX = 'wm';

/** Starts the doubles in a child process that writes its credential files into `dir`. */
export async function startCredentialDoubles(dir: string): Promise<CredentialDoubles> {
  const child = spawn(process.execPath, [...process.execArgv, self, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the credential doubles exited with code ${String(code)} before they were ready`)));
  });
  lines.close();
  const ready = JSON.parse(first) as { vault: string; aws: { url: string; region: string }; keycloak: { baseUrl: string; realm: string; issuer: string } };
  return {
    vault: { address: ready.vault, tokenFile: path.join(dir, 'vault-token'), pathPrefix: PATH_PREFIX },
    aws: { ...ready.aws, keysFile: path.join(dir, 'aws-keys.json') },
    keycloak: { ...ready.keycloak, adminSecretFile: path.join(dir, 'keycloak-admin-secret') },
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}

/** Reads the AWS key pair the doubles' child wrote. */
export async function readAwsKeys(doubles: CredentialDoubles): Promise<AwsKeys> {
  return JSON.parse(await readFile(doubles.aws.keysFile, 'utf8')) as AwsKeys;
}

async function child(dir: string): Promise<void> {
  const vault = await VaultDouble.start();
  // The least-privilege policy of docs/credentials-vault.md for the prefix (as test/plugins/credentials-vault/helpers.ts).
  vault.setPolicy(PATH_PREFIX, [
    { path: `secret/data/${PATH_PREFIX}/*`, capabilities: ['create', 'read', 'update'] },
    { path: `secret/metadata/${PATH_PREFIX}/*`, capabilities: ['create', 'read', 'update'] },
    { path: `secret/destroy/${PATH_PREFIX}/*`, capabilities: ['update'] },
    { path: `secret/undelete/${PATH_PREFIX}/*`, capabilities: ['update'] },
  ]);
  // Long enough that no renewal falls inside the run (a renewal is not what the bench measures).
  await writeFile(path.join(dir, 'vault-token'), `${vault.createToken({ policies: [PATH_PREFIX], ttlSeconds: 24 * 3600 })}\n`, { mode: 0o600 });
  const keys: AwsKeys = { accessKeyId: `AKIAWMBENCH${randomBytes(5).toString('hex').toUpperCase().slice(0, 9)}`, secretAccessKey: randomBytes(30).toString('base64url') };
  await writeFile(path.join(dir, 'aws-keys.json'), JSON.stringify(keys), { mode: 0o600 });
  const aws = await startSecretsManagerDouble({ principals: [keys] });
  // Tokens outlive the run (no grant inside a measurement but the ones measured); the rotated secret outlives it too.
  const kc = await startKeycloakDouble({
    clients: [{ clientId: KEYCLOAK_CLIENTS.admin, realmManagementRoles: ['manage-clients'] }, { clientId: KEYCLOAK_CLIENTS.resolve }, { clientId: KEYCLOAK_CLIENTS.rotate }],
    tokenTtlSeconds: 24 * 3600,
    rotation: { expirationPeriod: 30 * 86_400, rotatedExpirationPeriod: 86_400, remainingRotationPeriod: 600 },
  });
  await writeFile(path.join(dir, 'keycloak-admin-secret'), `${kc.client(KEYCLOAK_CLIENTS.admin).secret}\n`, { mode: 0o600 });
  process.stdout.write(`${JSON.stringify({ vault: vault.address, aws: { url: aws.url, region: aws.region }, keycloak: { baseUrl: kc.baseUrl, realm: kc.realm, issuer: kc.issuer } })}\n`);
  // The doubles keep every request they saw (for tests); this child only lives for one bench run.
  process.stdin.resume();
  await new Promise<void>((resolve) => process.stdin.once('end', resolve));
  await Promise.all([vault.close(), aws.close(), kc.close()]);
}

if (process.argv[1] === self) {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: credentialDoubles.ts <dir>');
  await child(dir);
}
