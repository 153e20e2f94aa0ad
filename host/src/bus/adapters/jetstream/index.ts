export * from './connectNats.ts';
export * from './JetStreamCommandClient.ts';
export * from './JetStreamCommandServer.ts';
export * from './JetStreamEventBus.ts';
export * from './streamDefinitions.ts';
export * from './JetStreamSubjectClient.ts';
