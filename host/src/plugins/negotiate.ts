import { acceptCapabilities, CAPABILITIES, CAPABILITY_VERSION, CredentialProviderContract, HOST_API_VERSION, WorkerProviderContract, type Contract, type PluginKind, type PluginMetadata } from '@worker-manager/plugin-sdk';
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

const CAPABILITY_RANGE = `^${CAPABILITY_VERSION}`;

/**
 * Checks a plugin's declared metadata against this host: host API range, required capabilities and their versions.
 * Pure and synchronous: it runs before any plugin code, and its errors name plugin, version and both sides.
 */
export function negotiatePlugin(meta: PluginMetadata, who: NegotiationSubject, hostApiVersion: string = HOST_API_VERSION): Negotiated {
  const details = { plugin: who.plugin, version: who.version, ...(who.instance === undefined ? {} : { instance: who.instance }) };
  if (semver.validRange(meta.hostApi) === null) {
    throw hostError('HOST_ERR_PLUGIN_METADATA_INVALID', `plugin '${who.plugin}'@${who.version}: hostApi '${meta.hostApi}' is not a semver range`, { details });
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
        `plugin '${who.plugin}'@${who.version} lacks required capability ${name} ${CAPABILITY_RANGE}` + (declared === undefined ? '' : ` (declares ${declared})`),
        { details: { ...details, capability: name, expected: CAPABILITY_RANGE, found: declared ?? null } },
      );
    }
  }
  const methods = Object.entries(contract.operations)
    .filter(([, op]) => capabilities[op.capability] !== undefined)
    .map(([method]) => method);
  return { contract, capabilities, methods, ignored };
}

/** Checks the capabilities an instance requires against what was negotiated. */
export function requireCapabilities(negotiated: Negotiated, required: readonly string[], who: NegotiationSubject): void {
  const missing = required.filter((c) => negotiated.capabilities[c] === undefined);
  if (missing.length > 0) {
    throw hostError(
      'HOST_ERR_CAPABILITY_MISSING',
      `instance '${who.instance}' requires ${missing.join(', ')}, which plugin '${who.plugin}'@${who.version} does not offer at ${CAPABILITY_RANGE}`,
      { details: { plugin: who.plugin, instance: who.instance, version: who.version, missing, offered: Object.keys(negotiated.capabilities) } },
    );
  }
}
