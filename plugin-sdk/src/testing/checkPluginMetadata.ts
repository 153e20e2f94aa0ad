import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Compile } from 'typebox/compile';
import { pluginMetadataOf, type PluginDefinition } from '../definePlugin.ts';
import { PluginMetadata } from '../pluginMetadata.ts';
import { formatIssues, schemaIssues } from './schemaIssues.ts';

const metadataValidator = Compile(PluginMetadata);

/**
 * Asserts that a plugin package describes its definition truthfully: the package.json `workerManager` block
 * deep-equals {@link pluginMetadataOf}`(definition)` and is a valid {@link PluginMetadata}, and `version` equals
 * `definition.version`. The host negotiates from the package.json before running any plugin code, so drift here
 * means the host decides on stale facts. Fix drift with `npm run plugin:metadata -- <packageDir>`.
 *
 * @throws AssertionError naming what differs.
 */
export async function checkPluginMetadata(packageDir: string, definition: PluginDefinition): Promise<void> {
  const file = path.join(packageDir, 'package.json');
  const pkg = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown; workerManager?: unknown };
  assert.equal(pkg.version, definition.version, `${file}: version ${String(pkg.version)} differs from the definition's ${definition.version}`);
  assert.ok(pkg.workerManager !== undefined, `${file} has no workerManager block; run npm run plugin:metadata -- ${packageDir}`);
  assert.ok(metadataValidator.Check(pkg.workerManager), `${file}: workerManager is invalid: ${formatIssues(schemaIssues(metadataValidator, pkg.workerManager))}`);
  assert.deepStrictEqual(pkg.workerManager, pluginMetadataOf(definition), `${file}: workerManager drifted from the definition; run npm run plugin:metadata -- ${packageDir}`);
}
