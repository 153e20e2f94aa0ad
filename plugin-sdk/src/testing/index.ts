/**
 * Test helpers for plugin authors: run a plugin in-process behind the host's checks, run the provider and credential
 * conformance suites against any plugin proxy, and check that package.json metadata matches the definition.
 * @packageDocumentation
 */
export * from './checkPluginMetadata.ts';
export * from './createPluginHarness.ts';
export * from './runCredentialConformance.ts';
export * from './runProviderConformance.ts';
export type { SchemaIssue } from './schemaIssues.ts';
