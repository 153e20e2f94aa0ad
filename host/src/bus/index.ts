export * from './createEvent.ts';
export * from './EventBus.ts';
export * from './EventEnvelope.ts';
export * from './MemoryEventBus.ts';
export * from './subjects.ts';
