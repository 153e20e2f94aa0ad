import { readFile } from 'node:fs/promises';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { hostError } from '../../../errors.ts';

/** Credentials, named by environment variable so that no secret sits in the config. */
export interface JetStreamCredentials {
  tokenEnv?: string | undefined;
  userEnv?: string | undefined;
  passwordEnv?: string | undefined;
  /** Path of a NATS `.creds` file (the path is not a secret; its content is read at connect). */
  credsFile?: string | undefined;
}

/** How to reach NATS. */
export interface NatsConnectOptions {
  servers: string[];
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  credentials?: JetStreamCredentials | undefined;
  /** Environment the credential variables are read from (default `process.env`). */
  env?: NodeJS.ProcessEnv | undefined;
  /** How long to keep trying to reach a server. */
  connectTimeoutMs: number;
  /** Base delay between attempts (jittered once connected). */
  reconnectWaitMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function auth(credentials: JetStreamCredentials | undefined, env: NodeJS.ProcessEnv): Promise<Partial<NodeConnectionOptions>> {
  if (credentials === undefined) return {};
  const read = (name: string | undefined): string | undefined => {
    if (name === undefined) return undefined;
    const value = env[name];
    if (value === undefined || value === '') throw hostError('HOST_ERR_CONFIG_ENV_MISSING', `environment variable ${name} (bus.jetstream.credentials) is not set`, { details: { variable: name } });
    return value;
  };
  const out: Partial<NodeConnectionOptions> = {};
  const token = read(credentials.tokenEnv);
  if (token !== undefined) out.token = token;
  const user = read(credentials.userEnv);
  if (user !== undefined) out.user = user;
  const pass = read(credentials.passwordEnv);
  if (pass !== undefined) out.pass = pass;
  if (credentials.credsFile !== undefined) out.authenticator = credsAuthenticator(await readFile(credentials.credsFile));
  return out;
}

/**
 * Connects, retrying until `connectTimeoutMs` has passed (HOST_ERR_BUS_UNAVAILABLE then). Once connected the client
 * reconnects by itself and never gives up.
 */
export async function connectNats(o: NatsConnectOptions): Promise<NatsConnection> {
  const deadline = Date.now() + o.connectTimeoutMs;
  const options: NodeConnectionOptions = {
    servers: o.servers,
    name: o.name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: o.reconnectWaitMs,
    reconnectJitter: Math.ceil(o.reconnectWaitMs / 2),
    pingInterval: 5_000,
    maxPingOut: 2,
    ...(await auth(o.credentials, o.env ?? process.env)),
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect({ ...options, timeout: Math.max(500, Math.min(5_000, deadline - Date.now())) });
    } catch (error) {
      if (Date.now() + o.reconnectWaitMs >= deadline) {
        // Server addresses are not secrets; credentials never appear here.
        throw hostError('HOST_ERR_BUS_UNAVAILABLE', `cannot reach NATS at ${o.servers.join(', ')} after ${attempt} attempt(s): ${(error as Error).message}`, {
          details: { servers: o.servers },
          cause: error,
        });
      }
      await sleep(o.reconnectWaitMs);
    }
  }
}
