import type { Writable } from 'node:stream';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { Option, type Command } from 'commander';

/** Exit codes of `wm audit verify`: the log is intact, it was tampered with, or it could not be checked. */
export const AUDIT_EXIT = { intact: 0, tampered: 1, unusable: 2 } as const;

/** Options of `wm audit verify`. */
export interface AuditVerifyOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
}

/**
 * Checks the hash chain of a host's audit log (`<stateDir>/audit/audit.log`) and prints the first broken record.
 * The state dir is given directly or read from the host config (`host.stateDir`).
 */
export async function auditVerifyCommand(options: AuditVerifyOptions, io: { out: Writable; err: Writable } = { out: process.stdout, err: process.stderr }): Promise<number> {
  // Imported here: `wm` starts every command through main.ts, and only this one needs the config loader.
  const { auditLogPath } = await import('../security/audit/AuditLog.ts');
  const { verifyAuditLog } = await import('../security/audit/verifyAuditLog.ts');
  let stateDir = options.stateDir;
  if (stateDir === undefined) {
    const { loadConfig } = await import('../config/loadConfig.ts');
    try {
      stateDir = (await loadConfig(options.config ?? 'config/default.yaml')).config.host.stateDir;
    } catch (error) {
      io.err.write(`wm: ${isWorkerManagerError(error) ? `[${error.code}] ${error.message}` : String(error)}\n`);
      return AUDIT_EXIT.unusable;
    }
  }
  const file = auditLogPath(stateDir);
  let result;
  try {
    result = await verifyAuditLog(file);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    io.err.write(`wm: ${missing ? `no audit log at ${file}` : `cannot read ${file}: ${(error as Error).message}`}\n`);
    return AUDIT_EXIT.unusable;
  }
  if (options.json === true) io.out.write(`${JSON.stringify({ file, ...result })}\n`);
  else if (result.ok) io.out.write(`audit log intact: ${result.records} records, last seq ${result.lastSeq}, last hash ${result.lastHash}\n${file}\n`);
  else io.out.write(`audit log TAMPERED: ${result.broken.message} [${result.broken.reason}]; ${result.records} records before it are intact\n${file}\n`);
  return result.ok ? AUDIT_EXIT.intact : AUDIT_EXIT.tampered;
}

/** `wm audit verify [--config file | --state-dir dir] [--json]`. */
export function registerAuditCommand(program: Command): Command {
  const audit = program.command('audit').description('the audit trail of authorization decisions and secret operations');
  audit
    .command('verify')
    .description('check the audit log\'s hash chain; exits 1 when a record was altered, removed, reordered or cut')
    .addOption(new Option('-c, --config <file>', 'host config file: its host.stateDir holds the log (default config/default.yaml)').env('WM_CONFIG'))
    .option('--state-dir <dir>', 'host state dir holding audit/audit.log (wins over --config)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: AuditVerifyOptions) => {
      process.exitCode = await auditVerifyCommand(opts);
    });
  return audit;
}
