/**
 * The worker-manager plugin SDK: the only package a plugin imports.
 * @packageDocumentation
 */
export * from './contracts/index.ts';
export * from './errors/index.ts';
export * from './definePlugin.ts';
export * from './pluginMetadata.ts';
export * from './pluginMetadataDrift.ts';
export * from './version.ts';
export * from './schema.ts';
export * from './fs/writeFileAtomic.ts';
export * from './fs/readProcStat.ts';
export * from './net/egressAgent.ts';
export * from './credentials/secretSource.ts';
export * from './credentials/checkSecretPayload.ts';
