export * from './categories.ts';
export * from './codes.ts';
export * from './SerializedError.ts';
export * from './WorkerManagerError.ts';
export * from './boundText.ts';
export * from './argumentListTooLong.ts';
