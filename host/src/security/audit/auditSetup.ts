import path from 'node:path';
import { hostError } from '../../errors.ts';
import type { AuditSettings } from './auditSettings.ts';

/** Where a key comes from, with paths made absolute. */
export type AuditKeyLocation = { file: string } | { env: string };

/** `security.audit` with its defaults decided and paths resolved: what the host and `wm audit` both work from. */
export interface AuditSetup {
  key: AuditKeyLocation & { generate: boolean };
  previousKeys: AuditKeyLocation[];
  /** The file anchor, if any. */
  anchorFile: string | undefined;
  /** Whether heads go on the bus. */
  busAnchor: boolean;
  every: { records: number; ms: number };
}

const trimmed = (dir: string): string => path.resolve(dir);

/** The key the embedded default generates: beside the state dir, never in it. */
export function defaultAuditKeyPath(stateDir: string): string {
  return `${trimmed(stateDir)}.audit-key`;
}

/** The anchor file of a host on the memory bus that names none. */
export function defaultAuditAnchorPath(stateDir: string): string {
  return `${trimmed(stateDir)}.audit-anchor`;
}

function inside(dir: string, file: string): boolean {
  const rel = path.relative(path.resolve(dir), path.resolve(file));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function invalid(message: string, field: string): Error {
  return hostError('HOST_ERR_CONFIG_INVALID', message, { details: { field } });
}

function location(source: { file?: string | undefined; env?: string | undefined }, field: string, configDir: string, stateDir: string): AuditKeyLocation | undefined {
  if (source.file !== undefined && source.env !== undefined) throw invalid(`${field}: give file or env, not both`, field);
  if (source.env !== undefined) return { env: source.env };
  if (source.file === undefined) return undefined;
  const file = path.resolve(configDir, source.file);
  // Whoever can write the state dir must not be able to read the key: that is the whole point of it.
  if (inside(stateDir, file)) throw invalid(`${field} (${file}) is inside host.stateDir (${stateDir}); keep the audit key out of the state dir`, field);
  return { file };
}

/**
 * Resolves `security.audit`: relative paths against the config file's folder, the embedded defaults (a generated key
 * at `<stateDir>.audit-key`; on the memory bus, an anchor file at `<stateDir>.audit-anchor`), and the rules the schema
 * cannot say (one of file and env; nothing inside the state dir; at least one anchor that outlives the process).
 * Throws HOST_ERR_CONFIG_INVALID.
 */
export function resolveAuditSetup(settings: AuditSettings, where: { configDir: string; stateDir: string; busAdapter: 'memory' | 'jetstream' }): AuditSetup {
  const { configDir, stateDir } = where;
  const configured = location(settings.key, 'security.audit.key', configDir, stateDir);
  const key = configured === undefined ? { file: defaultAuditKeyPath(stateDir), generate: true } : { ...configured, generate: settings.key.generate };
  const previousKeys = settings.previousKeys.map((source, i) => {
    const field = `security.audit.previousKeys[${i}]`;
    const found = location(source, field, configDir, stateDir);
    if (found === undefined) throw invalid(`${field}: give file or env`, field);
    return found;
  });
  let anchorFile: string | undefined;
  if (settings.anchor.file !== undefined) {
    anchorFile = path.resolve(configDir, settings.anchor.file);
    if (inside(stateDir, anchorFile)) throw invalid(`security.audit.anchor.file (${anchorFile}) is inside host.stateDir (${stateDir}); an anchor the state dir's writer can rewrite anchors nothing`, 'security.audit.anchor.file');
  } else if (where.busAdapter === 'memory') {
    anchorFile = defaultAuditAnchorPath(stateDir);
  }
  const busAnchor = settings.anchor.bus;
  if (anchorFile === undefined && !busAnchor) {
    throw invalid('security.audit.anchor: with bus: false, name a file; an audit chain without an anchor cannot show that its end was cut', 'security.audit.anchor');
  }
  return { key, previousKeys, anchorFile, busAnchor, every: { records: settings.anchor.everyRecords, ms: settings.anchor.everyMs } };
}
