export { PluginSandbox } from './PluginSandbox.ts';
export type { SandboxOptions, SandboxState, SandboxStats, SandboxStatusChange, SandboxStatusReason, SandboxStream } from './PluginSandbox.ts';
