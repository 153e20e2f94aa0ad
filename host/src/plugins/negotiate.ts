import { acceptCapabilities, CAPABILITIES, capabilityRange, CredentialProviderContract, HOST_API_VERSION, WorkerProviderContract, type Contract, type PluginKind, type PluginMetadata } from '@worker-manager/plugin-sdk';
import semver from 'semver';
import { hostError } from '../errors.ts';

/** The outcome of negotiating one plugin against this host. */
export interface Negotiated {
  contract: Contract;
  /** Capability name -> the version the plugin declared, for every capability the host accepted. */
  capabilities: Record<string, string>;
  /** Operations the host may route to the plugin. */
  methods: string[];
  /** Declared capabilities the host did not accept, and why (reported, not fatal). */
  ignored: Array<{ capability: string; version: string; reason: string }>;
}

/** Identity of what is being negotiated, for error messages (STYLE 4: name the culprit). */
export interface NegotiationSubject {
  plugin: string;
  instance?: string;
  version: string;
}

export function contractFor(kind: PluginKind): Contract {
  return kind === 'provider' ? WorkerProviderContract : CredentialProviderContract;
}

/** Host API versions whose providers speak worker-provider contract 1 (createWorker waits until the worker runs). */
const CONTRACT_1_HOST_API = '1.0.0';

/**
 * True for a provider built for contract 1: its hostApi range admits host API 1.x (and not this host's), or it
 * declares `worker.lifecycle` 1.x. Such a plugin would answer createWorker only once its worker runs, and the host
 * would misread a fast create as the whole story, so it is refused with its own code rather than a bare mismatch.
 */
function builtForContract1(meta: PluginMetadata, hostApiVersion: string): boolean {
  if (meta.kind !== 'provider') return false;
  const lifecycle = meta.capabilities['worker.lifecycle'];
  if (lifecycle !== undefined && semver.valid(lifecycle) !== null && semver.major(lifecycle) === 1) return true;
  return !semver.satisfies(hostApiVersion, meta.hostApi, { includePrerelease: true }) && semver.satisfies(CONTRACT_1_HOST_API, meta.hostApi, { includePrerelease: true });
}

/**
 * Checks a plugin's declared metadata against this host: host API range, required capabilities and their versions.
 * Pure and synchronous: it runs before any plugin code, and its errors name plugin, version and both sides.
 */
export function negotiatePlugin(meta: PluginMetadata, who: NegotiationSubject, hostApiVersion: string = HOST_API_VERSION): Negotiated {
  const details = { plugin: who.plugin, version: who.version, ...(who.instance === undefined ? {} : { instance: who.instance }) };
  if (semver.validRange(meta.hostApi) === null) {
    throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${who.plugin}'@${who.version}: hostApi '${meta.hostApi}' is not a semver range`, { details });
  }
  if (builtForContract1(meta, hostApiVersion)) {
    throw hostError(
      'HOST_ERR_PLUGIN_CONTRACT_OUTDATED',
      `plugin '${who.plugin}'@${who.version} was built for worker-provider contract 1 (hostApi ${meta.hostApi}, worker.lifecycle ${meta.capabilities['worker.lifecycle'] ?? 'undeclared'}), ` +
        `whose createWorker waits until the worker runs; this host offers host API ${hostApiVersion} and contract ${WorkerProviderContract.version}, ` +
        `where createWorker returns once the worker is accepted: rebuild the plugin on a plugin-sdk whose HOST_API_VERSION is ${hostApiVersion}`,
      { details: { ...details, expected: `hostApi ^${hostApiVersion}, worker.lifecycle ${capabilityRange('worker.lifecycle')}`, found: `hostApi ${meta.hostApi}, worker.lifecycle ${meta.capabilities['worker.lifecycle'] ?? null}` } },
    );
  }
  if (!semver.satisfies(hostApiVersion, meta.hostApi, { includePrerelease: true })) {
    throw hostError(
      'HOST_ERR_HOST_API_MISMATCH',
      `plugin '${who.plugin}'@${who.version} needs host API ${meta.hostApi}, this host offers ${hostApiVersion}`,
      { details: { ...details, expected: meta.hostApi, found: hostApiVersion } },
    );
  }
  const contract = contractFor(meta.kind);
  const { accepted: capabilities, ignored } = acceptCapabilities(contract.name, meta.capabilities);
  for (const [name, info] of Object.entries(CAPABILITIES)) {
    if (info.contract === contract.name && info.required && capabilities[name] === undefined) {
      const declared = meta.capabilities[name];
      throw hostError(
        'HOST_ERR_CAPABILITY_MISSING',
        `plugin '${who.plugin}'@${who.version} lacks required capability ${name} ${capabilityRange(name as keyof typeof CAPABILITIES)}` + (declared === undefined ? '' : ` (declares ${declared})`),
        { details: { ...details, capability: name, expected: capabilityRange(name as keyof typeof CAPABILITIES), found: declared ?? null } },
      );
    }
  }
  const methods = Object.entries(contract.operations)
    .filter(([, op]) => capabilities[op.capability] !== undefined)
    .map(([method]) => method);
  return { contract, capabilities, methods, ignored };
}

/** How {@link requireCapabilities} names the required capabilities, which come from the config. */
export interface RequiredCapabilityNames {
  /** The text to show for the `index`th capability (its `${...}` source when it came from the environment). */
  show?(capability: string, index: number): string;
  /** `file:line:col: ` of the `index`th capability, put before the message. */
  where?(index: number): string;
}

/** Checks the capabilities an instance requires against what was negotiated. */
export function requireCapabilities(negotiated: Negotiated, required: readonly string[], who: NegotiationSubject, names: RequiredCapabilityNames = {}): void {
  const missing = required.flatMap((c, i) => (negotiated.capabilities[c] === undefined ? [{ shown: names.show?.(c, i) ?? c, index: i }] : []));
  const first = missing[0];
  if (first !== undefined) {
    const shown = missing.map((m) => m.shown);
    throw hostError(
      'HOST_ERR_CAPABILITY_MISSING',
      `${names.where?.(first.index) ?? ''}instance '${who.instance}' requires ${shown.join(', ')}, which plugin '${who.plugin}'@${who.version} does not offer at a version this host speaks`,
      { details: { plugin: who.plugin, instance: who.instance, version: who.version, missing: shown, offered: Object.keys(negotiated.capabilities) } },
    );
  }
}
