import os from 'node:os';
import path from 'node:path';
import type { AuditAnchor } from '../security/audit/AuditAnchor.ts';
import type { AuditKeyring } from '../security/audit/AuditKeyring.ts';
import type { AuditSetup } from '../security/audit/auditSetup.ts';

/** What `wm audit verify` and `wm audit reset` are told on the command line. */
export interface AuditCliOptions {
  config?: string;
  stateDir?: string;
  keyFile?: string;
  keyEnv?: string;
  previousKeyFile?: string[];
  anchorFile?: string;
  /** false with `--no-anchor`. */
  anchor?: boolean;
  json?: boolean;
}

/** The log, its key and its anchors, as the host that writes it sees them. */
export interface AuditTools {
  file: string;
  stateDir: string;
  hostId: string;
  keyring: AuditKeyring;
  anchors: AuditAnchor[];
  /** What could not be checked, for the report. */
  notes: string[];
  close(): Promise<void>;
}

/** Where the log is and how its key and anchors are found, before anything is opened. */
export interface AuditLocation {
  file: string;
  stateDir: string;
  hostId: string;
  setup: AuditSetup;
  notes: string[];
  /** Connects to the JetStream anchor, when the config has one. */
  openBus: (() => Promise<{ anchor: AuditAnchor; close(): Promise<void> }>) | undefined;
}

/**
 * Resolves the log, the key and the anchors from `--config` (the host's own `security.audit`, bus and state dir) or
 * from `--state-dir` (the embedded defaults beside it: `<stateDir>.audit-key`, `<stateDir>.audit-anchor`), with the
 * `--key-*` and `--anchor-file` options winning. Throws the coded errors of the config.
 */
export async function locateAudit(options: AuditCliOptions, env?: NodeJS.ProcessEnv): Promise<AuditLocation> {
  const { auditLogPath } = await import('../security/audit/AuditLog.ts');
  const { defaultAuditAnchorPath, defaultAuditKeyPath, resolveAuditSetup } = await import('../security/audit/auditSetup.ts');
  const { defaultHostId } = await import('../defaultHostId.ts');
  const notes: string[] = [];
  let stateDir: string;
  let hostId: string;
  let setup: AuditSetup;
  let openBus: AuditLocation['openBus'];
  if (options.stateDir !== undefined) {
    stateDir = path.resolve(options.stateDir);
    hostId = defaultHostId();
    setup = { key: { file: defaultAuditKeyPath(stateDir), generate: true }, previousKeys: [], anchorFile: defaultAuditAnchorPath(stateDir), busAnchor: false, every: { records: 1, ms: 1_000 } };
  } else {
    const { loadConfig } = await import('../config/loadConfig.ts');
    const loaded = await loadConfig(options.config ?? 'config/default.yaml');
    const { config } = loaded;
    stateDir = path.resolve(loaded.dir, config.host.stateDir);
    hostId = config.host.id ?? defaultHostId();
    setup = resolveAuditSetup(config.security.audit, { configDir: loaded.dir, stateDir, busAdapter: config.bus.adapter });
    if (setup.busAnchor && config.bus.adapter === 'jetstream') {
      openBus = async () => {
        const { jetStreamConnection } = await import('../bus/createEventBus.ts');
        const { JetStreamSubjectClient } = await import('../bus/adapters/jetstream/JetStreamSubjectClient.ts');
        const { subjectsFor } = await import('../bus/subjects.ts');
        const { BusAuditAnchor } = await import('../security/audit/BusAuditAnchor.ts');
        const client = await JetStreamSubjectClient.connect({ ...jetStreamConnection(config.bus, { configDir: loaded.dir, hostId, env }), name: `wm-audit-${hostId}`, prefix: config.bus.subjectPrefix });
        return { anchor: new BusAuditAnchor({ bus: client, subjects: subjectsFor(config.bus.subjectPrefix), hostId }), close: () => client.close() };
      };
    } else if (setup.busAnchor) {
      notes.push('the memory bus anchor lives in the host process and cannot be read from here');
    }
  }
  if (options.keyFile !== undefined || options.keyEnv !== undefined) {
    setup.key = options.keyEnv !== undefined ? { env: options.keyEnv, generate: false } : { file: path.resolve(options.keyFile as string), generate: false };
  }
  if (options.previousKeyFile !== undefined) setup.previousKeys = [...setup.previousKeys, ...options.previousKeyFile.map((f) => ({ file: path.resolve(f) }))];
  if (options.anchorFile !== undefined) setup.anchorFile = path.resolve(options.anchorFile);
  if (options.anchor === false) notes.push('anchors not checked (--no-anchor): records cut from the end, or a deleted or replaced log, would not show');
  return { file: auditLogPath(stateDir), stateDir, hostId, setup, notes, openBus };
}

/**
 * Opens what `locateAudit` found: loads the keys (generating the embedded default's only when `generateKey`) and
 * connects the anchors (none with `--no-anchor`). The JetStream anchor is read over a connection of its own; the
 * memory bus's lives in the host process and cannot be read from here. Throws the coded errors of key and bus.
 */
export async function openAuditTools(where: AuditLocation, options: AuditCliOptions, purpose: { generateKey: boolean; env?: NodeJS.ProcessEnv }): Promise<AuditTools> {
  const { loadAuditKeyring } = await import('../security/audit/loadAuditKeyring.ts');
  const { FileAuditAnchor } = await import('../security/audit/FileAuditAnchor.ts');
  const keyring = await loadAuditKeyring(where.setup, { generate: purpose.generateKey, env: purpose.env });
  const anchors: AuditAnchor[] = [];
  const closers: Array<() => Promise<void>> = [];
  if (options.anchor !== false) {
    if (where.openBus !== undefined) {
      const bus = await where.openBus();
      anchors.push(bus.anchor);
      closers.push(bus.close);
    }
    if (where.setup.anchorFile !== undefined) anchors.push(new FileAuditAnchor(where.setup.anchorFile));
  }
  return {
    file: where.file,
    stateDir: where.stateDir,
    hostId: where.hostId,
    keyring,
    anchors,
    notes: where.notes,
    close: async () => {
      for (const anchor of anchors) await anchor.close?.();
      for (const close of closers) await close();
    },
  };
}

/** The operator a reset record names: the OS user, and the machine. */
export function operatorName(): string {
  let user = process.env['USER'] ?? 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry (a container with an arbitrary uid): the environment's USER, if any.
  }
  return `${user}@${os.hostname()}`;
}
