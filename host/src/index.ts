export * from './bus/index.ts';
export { loadConfig, parseConfig, type LoadedConfig } from './config/loadConfig.ts';
export * from './errors.ts';
export { defaultHostId, Host, type HostOptions } from './Host.ts';
export type { ReportRow } from './plugins/PluginRegistry.ts';
export { WorkerService, type CreateWorkerRequest, type RoutedWorker } from './workers/WorkerService.ts';
