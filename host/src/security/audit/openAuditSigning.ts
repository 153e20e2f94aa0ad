import type { EventBus } from '../../bus/EventBus.ts';
import type { Subjects } from '../../bus/subjects.ts';
import type { Logger } from '../../observability/logger.ts';
import type { AuditAnchor } from './AuditAnchor.ts';
import type { AuditSigning } from './AuditLog.ts';
import type { AuditSettings } from './auditSettings.ts';
import { resolveAuditSetup } from './auditSetup.ts';
import { BusAuditAnchor } from './BusAuditAnchor.ts';
import { FileAuditAnchor } from './FileAuditAnchor.ts';
import { loadAuditKeyring } from './loadAuditKeyring.ts';

/** What the host's audit log is signed and anchored with, from `security.audit`. */
export interface AuditSigningDeps {
  settings: AuditSettings;
  configDir: string;
  stateDir: string;
  bus: EventBus;
  subjects: Subjects;
  hostId: string;
  logger?: Logger | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

/**
 * The host's `AuditLog.signing`: resolves the settings, loads (or, in the embedded default, generates) the key, and
 * opens the anchors: the bus (`anchor.bus`) and the anchor file. Runs when the log starts, so that a bad setting fails
 * the host's start with its code.
 */
export function openAuditSigning(deps: AuditSigningDeps): () => Promise<AuditSigning> {
  return async () => {
    const setup = resolveAuditSetup(deps.settings, { configDir: deps.configDir, stateDir: deps.stateDir, busAdapter: deps.bus.adapter === 'jetstream' ? 'jetstream' : 'memory' });
    const keyring = await loadAuditKeyring(setup, { logger: deps.logger?.child({ component: 'audit' }), env: deps.env });
    const anchors: AuditAnchor[] = [];
    if (setup.busAnchor) anchors.push(new BusAuditAnchor({ bus: deps.bus, subjects: deps.subjects, hostId: deps.hostId }));
    if (setup.anchorFile !== undefined) anchors.push(new FileAuditAnchor(setup.anchorFile));
    return { keyring, anchors, every: setup.every };
  };
}
