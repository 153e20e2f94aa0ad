// The worker ledger's port and its vocabulary. Adapters are imported from adapters/<name>/ by whoever wires the
// host, so that this entry never pulls in libsql or the NATS client.
export * from './WorkerStore.ts';
export * from './workerRecord.ts';
export * from './workerStateMachine.ts';
export * from './labelSelector.ts';
export { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './listQuery.ts';
