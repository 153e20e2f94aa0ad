/**
 * Shapes shared by the host and its plugin threads. Not for plugin authors: plugins never see the wire protocol.
 * @packageDocumentation
 */
export * from './protocol.ts';
