import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { isWorkerManagerError } from '@worker-manager/plugin-sdk';
import { Option, type Command } from 'commander';
import type { AnchorReading } from '../security/audit/AuditAnchor.ts';
import type { AuditVerification } from '../security/audit/verifyAuditLog.ts';
import { locateAudit, openAuditTools, operatorName, type AuditCliOptions, type AuditLocation, type AuditTools } from './auditTools.ts';

/** Exit codes of `wm audit verify` and `reset`: intact / done, tampered / refused, or it could not be checked. */
export const AUDIT_EXIT = { intact: 0, tampered: 1, unusable: 2 } as const;

/** Options of `wm audit verify`. */
export type AuditVerifyOptions = AuditCliOptions;

/** Options of `wm audit reset`. */
export interface AuditResetOptions extends AuditCliOptions {
  reason: string;
  force?: boolean;
}

type Io = { out: Writable; err: Writable };

function failure(io: Io, error: unknown): number {
  io.err.write(`wm: ${isWorkerManagerError(error) ? `[${error.code}] ${error.message}` : error instanceof Error ? error.message : String(error)}\n`);
  return AUDIT_EXIT.unusable;
}

async function readAnchors(tools: AuditTools): Promise<AnchorReading[]> {
  const readings: AnchorReading[] = [];
  for (const anchor of tools.anchors) readings.push({ anchor: anchor.name, head: await anchor.latest() });
  return readings;
}

function report(result: AuditVerification, tools: AuditTools): string {
  if (!result.ok) {
    // A finding about the log's end (against an anchor) comes after every record it holds was checked.
    const intact = result.broken.line === undefined ? `the ${result.records} records it holds are intact` : `${result.records} records before it are intact`;
    return `audit log TAMPERED: ${result.broken.message} [${result.broken.reason}]; ${intact}\n${tools.file}\n`;
  }
  const lines = [`audit log intact: ${result.records} records, last seq ${result.lastSeq}, last hash ${result.lastHash}`];
  if (result.chain !== undefined) lines.push(`chain ${result.chain}${result.reset === undefined ? '' : `, begun by a reset by ${result.reset.by} at ${result.reset.time}${result.reset.reason === undefined ? '' : ` (${JSON.stringify(result.reset.reason)})`}`}`);
  lines.push(`every record's MAC verified (keys ${result.keys.length === 0 ? 'none used' : result.keys.join(', ')})`);
  for (const a of result.anchors) {
    if (a.superseded === true) lines.push(`anchor ${a.anchor}: holds a head of the chain the reset ended (the host anchors this chain at its next start)`);
    else lines.push(a.seq === undefined ? `anchor ${a.anchor}: holds no head` : `anchor ${a.anchor}: holds record ${a.seq}, which the log continues`);
  }
  if (result.anchors.length > 0 && result.unanchored > 0) lines.push(`${result.unanchored} record(s) after the last anchored head: written since the last head was published`);
  for (const note of tools.notes) lines.push(`note: ${note}`);
  lines.push(tools.file);
  return `${lines.join('\n')}\n`;
}

/**
 * Checks a host's audit log (`<stateDir>/audit/audit.log`): every record's hash, MAC and place in the chain, then its
 * end against every anchor's head. Prints the first finding, each kind with its own message and reason. The log, key
 * and anchors come from the host config (`--config`) or from a state dir and its embedded defaults (`--state-dir`).
 */
export async function auditVerifyCommand(options: AuditVerifyOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  let where: AuditLocation;
  let tools: AuditTools;
  try {
    where = await locateAudit(options);
  } catch (error) {
    return failure(io, error);
  }
  try {
    tools = await openAuditTools(where, options, { generateKey: false });
  } catch (error) {
    // Most likely a wrong path: say that first.
    if (!existsSync(where.file) && isWorkerManagerError(error) && error.code === 'HOST_ERR_AUDIT_KEY_UNAVAILABLE') return failure(io, new Error(`no audit log at ${where.file} (and ${error.message})`));
    return failure(io, error);
  }
  try {
    const { verifyAuditLog } = await import('../security/audit/verifyAuditLog.ts');
    let result: AuditVerification;
    try {
      result = await verifyAuditLog(tools.file, { keyring: tools.keyring, anchors: await readAnchors(tools) });
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (missing) return failure(io, new Error(`no audit log at ${tools.file}, and no anchor holds a head`));
      return failure(io, isWorkerManagerError(error) ? error : new Error(`cannot read ${tools.file}: ${(error as Error).message}`));
    }
    io.out.write(options.json === true ? `${JSON.stringify({ file: tools.file, ...result, notes: tools.notes })}\n` : report(result, tools));
    return result.ok ? AUDIT_EXIT.intact : AUDIT_EXIT.tampered;
  } finally {
    await tools.close();
  }
}

/**
 * An operator's acknowledgement that the anchored chain cannot be continued: sets the log aside and begins a new
 * chain whose first record is the reset itself, anchored like any head. Refuses (exit 1) on a log that verifies,
 * unless `--force`; needs the host stopped (the state dir lock).
 */
export async function auditResetCommand(options: AuditResetOptions, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  if (options.reason.trim().length === 0) return failure(io, new Error('--reason must say why the chain is reset'));
  let tools: AuditTools;
  try {
    tools = await openAuditTools(await locateAudit(options), options, { generateKey: true });
  } catch (error) {
    return failure(io, error);
  }
  const { resetAuditChain } = await import('../security/audit/resetAuditChain.ts');
  let result;
  try {
    result = await resetAuditChain({ file: tools.file, stateDir: tools.stateDir, hostId: tools.hostId, keyring: tools.keyring, anchors: tools.anchors, reason: options.reason, operator: operatorName(), force: options.force === true });
  } catch (error) {
    return failure(io, error);
  } finally {
    await tools.close();
  }
  if (options.json === true) io.out.write(`${JSON.stringify({ file: tools.file, ...result })}\n`);
  else if (!result.reset) io.out.write(`audit log not reset: it verifies and continues its anchored chain, so there is nothing to acknowledge; --force begins a new chain anyway\n${tools.file}\n`);
  else {
    io.out.write(`audit chain reset: found ${result.found}; new chain ${result.chain} begins with the reset record, anchored in ${result.anchors.join(', ') || 'no anchor'}\n`);
    if (result.setAside !== undefined) io.out.write(`the previous log is kept as ${result.setAside}\n`);
    io.out.write(`${tools.file}\n`);
  }
  return result.reset ? AUDIT_EXIT.intact : AUDIT_EXIT.tampered;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function sourceOptions(command: Command): Command {
  return command
    .addOption(new Option('-c, --config <file>', 'host config file: its host.stateDir, security.audit and bus (default config/default.yaml)').env('WM_CONFIG'))
    .option('--state-dir <dir>', 'host state dir holding audit/audit.log, with the embedded defaults beside it (<dir>.audit-key, <dir>.audit-anchor); wins over --config')
    .option('--key-file <file>', 'audit key file (instead of the configured key)')
    .option('--key-env <name>', 'environment variable holding the audit key (instead of the configured key)')
    .option('--previous-key-file <file>', 'an earlier audit key, for records signed before a rotation (repeatable)', collect)
    .option('--anchor-file <file>', 'anchor file (instead of the configured one)')
    .option('--json', 'print the result as JSON');
}

/** `wm audit verify` and `wm audit reset`. */
export function registerAuditCommand(program: Command): Command {
  const audit = program.command('audit').description('the audit trail of authorization decisions and secret operations');
  sourceOptions(audit.command('verify'))
    .description('check every audit record\'s hash, MAC and place in the chain, and the log\'s end against its anchors; exits 1 when records were altered, forged, removed, reordered, cut from the end, or the log was emptied, deleted or replaced')
    .option('--no-anchor', 'do not read the anchors (checks the records only)')
    .action(async (opts: AuditVerifyOptions) => {
      process.exitCode = await auditVerifyCommand(opts);
    });
  sourceOptions(audit.command('reset'))
    .description('acknowledge that the anchored audit chain cannot be continued: set the log aside and begin a new chain with an audited, anchored reset record (the host must be stopped)')
    .requiredOption('--reason <text>', 'why: kept in the reset record')
    .option('--force', 'reset even though the log verifies')
    .action(async (opts: AuditResetOptions) => {
      process.exitCode = await auditResetCommand(opts);
    });
  return audit;
}
