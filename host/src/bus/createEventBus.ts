import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Value from 'typebox/value';
import { toWorkerManagerError } from '@worker-manager/plugin-sdk';
import { JetStreamSettings, type BusSettings } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { NatsConnectOptions } from './adapters/jetstream/connectNats.ts';
import { JetStreamEventBus } from './adapters/jetstream/JetStreamEventBus.ts';
import type { EventBus } from './EventBus.ts';
import { MemoryEventBus } from './MemoryEventBus.ts';
import type { Subjects } from './subjects.ts';

/** The streams file used when the config names none. */
export const DEFAULT_STREAMS_FILE = fileURLToPath(new URL('../../../config/jetstream/streams.yaml', import.meta.url));

/** How the JetStream settings reach NATS: connection, streams file and publish deadline, paths resolved. */
export function jetStreamConnection(settings: BusSettings, deps: { configDir: string; hostId: string; env?: NodeJS.ProcessEnv | undefined }): NatsConnectOptions & { streams: string; publishTimeoutMs: number } {
  const js = settings.jetstream ?? (Value.Default(JetStreamSettings, {}) as NonNullable<BusSettings['jetstream']>);
  return {
    servers: js.servers,
    name: js.name ?? `wm-${deps.hostId}`,
    credentials: {
      tokenEnv: js.credentials.tokenEnv,
      userEnv: js.credentials.userEnv,
      passwordEnv: js.credentials.passwordEnv,
      credsFile: js.credentials.credsFile === undefined ? undefined : path.resolve(deps.configDir, js.credentials.credsFile),
    },
    env: deps.env,
    connectTimeoutMs: js.connectTimeoutMs,
    reconnectWaitMs: js.reconnectWaitMs,
    streams: js.streamsFile === undefined ? DEFAULT_STREAMS_FILE : path.resolve(deps.configDir, js.streamsFile),
    publishTimeoutMs: js.publishTimeoutMs,
  };
}

/** Builds the configured bus adapter. Relative paths resolve against the config file's folder and the state dir. */
export function createEventBus(deps: { settings: BusSettings; configDir: string; stateDir: string; hostId: string; subjects: Subjects; logger: Logger; env?: NodeJS.ProcessEnv }): EventBus {
  const { settings, logger } = deps;
  const onHandlerError = (err: unknown, event: { busSubject: string; id: string }): void =>
    logger.error({ err: toWorkerManagerError(err).toJSON(), subject: event.busSubject, eventId: event.id }, 'event handler failed; event dead-lettered');
  if (settings.adapter === 'memory') return new MemoryEventBus({ onHandlerError, subjects: deps.subjects, maxDeliver: settings.maxDeliver ?? 5 });
  const js = settings.jetstream ?? (Value.Default(JetStreamSettings, {}) as NonNullable<BusSettings['jetstream']>);
  const log = logger.child({ component: 'bus', adapter: 'jetstream' });
  return new JetStreamEventBus({
    ...jetStreamConnection(settings, deps),
    subjects: deps.subjects,
    outboxFile: path.join(path.resolve(deps.stateDir, js.outbox.dir), 'events.jsonl'),
    spillAfterMs: js.outbox.spillAfterMs,
    maxInFlight: js.maxInFlight,
    drainTimeoutMs: js.drainTimeoutMs,
    onHandlerError,
    onWarning: (message, fields) => log.warn(fields, message),
  });
}
