import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { hostError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import { auditKey, AuditKeyring, MIN_AUDIT_KEY_BYTES, type AuditKey } from './AuditKeyring.ts';
import type { AuditKeyLocation, AuditSetup } from './auditSetup.ts';

const describe = (where: AuditKeyLocation): string => ('env' in where ? `environment variable ${where.env}` : `key file ${where.file}`);

function unavailable(where: AuditKeyLocation, message: string, extra: Record<string, unknown> = {}): Error {
  // Names the variable or file, never a byte of what it holds.
  return hostError('HOST_ERR_AUDIT_KEY_UNAVAILABLE', `audit key: ${message}`, { details: { ...('env' in where ? { keyEnv: where.env } : { keyFile: where.file }), ...extra } });
}

/** A trailing newline is dropped, so `echo key > file` and the same key in a variable agree. */
function withoutNewline(material: Buffer): Buffer {
  const end = material.at(-1) === 0x0a ? (material.at(-2) === 0x0d ? material.length - 2 : material.length - 1) : material.length;
  return material.subarray(0, end);
}

/** Writes a new random key to `file` (0600, exclusive create, fsynced); false if someone else created it first. */
async function generate(file: string): Promise<boolean> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(`${randomBytes(32).toString('base64url')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

/** Reads one key; generates it first when allowed and missing. */
export async function loadAuditKey(where: AuditKeyLocation, options: { generate?: boolean; env?: NodeJS.ProcessEnv; logger?: Logger } = {}): Promise<AuditKey> {
  let material: Buffer;
  if ('env' in where) {
    const value = (options.env ?? process.env)[where.env];
    if (value === undefined || value.length === 0) throw unavailable(where, `${describe(where)} is not set`);
    material = withoutNewline(Buffer.from(value, 'utf8'));
  } else {
    if (options.generate === true && (await generate(where.file).catch((error: unknown) => {
      throw unavailable(where, `${describe(where)} cannot be created: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }))) {
      options.logger?.warn(
        { keyFile: where.file },
        'generated a new audit key (mode 0600) because none was configured or the configured file did not exist. It signs every audit record: back it up and keep it out of reach of whoever can write the state dir; without it the log cannot be verified. In production name your own key in security.audit.key (file or env).',
      );
    }
    try {
      material = withoutNewline(await readFile(where.file));
    } catch (error) {
      throw unavailable(where, `${describe(where)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { errno: (error as NodeJS.ErrnoException).code ?? null });
    }
    const mode = (await stat(where.file)).mode;
    if ((mode & 0o077) !== 0) options.logger?.warn({ keyFile: where.file, mode: (mode & 0o777).toString(8) }, 'the audit key file can be read by other users; chmod 600 it');
  }
  if (material.length < MIN_AUDIT_KEY_BYTES) throw unavailable(where, `${describe(where)} holds fewer than ${MIN_AUDIT_KEY_BYTES} bytes`, { minBytes: MIN_AUDIT_KEY_BYTES });
  return auditKey(material);
}

/** The current key (generated when the setup says so) and every previous one. Throws HOST_ERR_AUDIT_KEY_UNAVAILABLE. */
export async function loadAuditKeyring(setup: Pick<AuditSetup, 'key' | 'previousKeys'>, options: { env?: NodeJS.ProcessEnv; logger?: Logger; generate?: boolean } = {}): Promise<AuditKeyring> {
  const { generate: allowed, ...where } = setup.key;
  const current = await loadAuditKey(where as AuditKeyLocation, { ...options, generate: (options.generate ?? true) && allowed });
  const previous = await Promise.all(setup.previousKeys.map((p) => loadAuditKey(p, { ...options, generate: false })));
  return new AuditKeyring(current, previous);
}
