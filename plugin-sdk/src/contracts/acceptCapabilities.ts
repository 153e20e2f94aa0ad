import semver from 'semver';
import { CAPABILITIES } from './capabilities.ts';

/** The capabilities a host accepts from a declaration, and the ones it ignores with the reason. */
export interface AcceptedCapabilities {
  accepted: Record<string, string>;
  ignored: Array<{ capability: string; version: string; reason: string }>;
}

/**
 * What a host built on this SDK accepts from a plugin's declared capabilities: known capabilities of the plugin's
 * contract whose version satisfies the range the host speaks for it (`^` its version: same major, not older). The host's negotiation and the
 * testing harness both use this, so a plugin's tests see exactly what the host will route.
 */
export function acceptCapabilities(contractName: string, declared: Readonly<Record<string, string>>): AcceptedCapabilities {
  const accepted: Record<string, string> = {};
  const ignored: AcceptedCapabilities['ignored'] = [];
  for (const [capability, version] of Object.entries(declared)) {
    const info = (CAPABILITIES as Record<string, { contract: string; version: string }>)[capability];
    if (info === undefined) ignored.push({ capability, version, reason: 'unknown to this host' });
    else if (info.contract !== contractName) ignored.push({ capability, version, reason: `belongs to the ${info.contract} contract` });
    else if (semver.valid(version) === null || !semver.satisfies(version, `^${info.version}`)) ignored.push({ capability, version, reason: `host speaks ^${info.version}` });
    else accepted[capability] = version;
  }
  return { accepted, ignored };
}
