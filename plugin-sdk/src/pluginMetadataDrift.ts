import { pluginMetadataOf, type PluginDefinition } from './definePlugin.ts';

/** What a plugin package says about itself: its package.json `version` and `workerManager` block, as parsed. */
export interface PackageMetadataFacts {
  version?: unknown;
  workerManager?: unknown;
}

// Enough to name every realistic drift, few enough that a hostile package cannot make a message of megabytes.
const MAX_DIFFERENCES = 20;
const MAX_VALUE_CHARS = 120;

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}...` : text;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Escapes a key the JSON Pointer way (RFC 6901), so a capability name with a `/` stays one segment. */
const segment = (key: string): string => key.replaceAll('~', '~0').replaceAll('/', '~1');

function diff(at: string, packageValue: unknown, declared: unknown, out: string[]): void {
  if (out.length > MAX_DIFFERENCES) return;
  if (isRecord(packageValue) && isRecord(declared)) {
    // Key order is not meaning: the host reads the block as data.
    const keys = new Set([...Object.keys(packageValue), ...Object.keys(declared)]);
    for (const key of [...keys].sort()) diff(`${at}/${segment(key)}`, packageValue[key], declared[key], out);
    return;
  }
  if (Array.isArray(packageValue) && Array.isArray(declared)) {
    for (let i = 0; i < Math.max(packageValue.length, declared.length); i++) diff(`${at}/${i}`, packageValue[i], declared[i], out);
    return;
  }
  if (JSON.stringify(packageValue) !== JSON.stringify(declared)) {
    out.push(`${at}: package.json has ${shown(packageValue)}, definePlugin has ${shown(declared)}`);
  }
}

/**
 * Every difference between what a plugin package declares (package.json `version` and `workerManager` block) and
 * what its {@link definePlugin} call declares, one line each, naming the JSON path and both values, e.g.
 * `workerManager/capabilities/worker.logs: package.json has "1.0.0", definePlugin has nothing`. Empty when the two
 * agree; key order is ignored. The host negotiates from the package.json before running plugin code and refuses, once
 * the code is loaded, a plugin whose two declarations differ (`HOST_ERR_PLUGIN_METADATA_DRIFT`); `wm-plugin metadata
 * --check` reports the same lines.
 */
export function pluginMetadataDrift(pkg: PackageMetadataFacts, definition: PluginDefinition): string[] {
  const out: string[] = [];
  diff('version', pkg.version, definition.version, out);
  if (pkg.workerManager === undefined) out.push('workerManager: package.json has no workerManager block');
  else diff('workerManager', pkg.workerManager, pluginMetadataOf(definition), out);
  if (out.length > MAX_DIFFERENCES) return [...out.slice(0, MAX_DIFFERENCES), 'and more differences'];
  return out;
}
