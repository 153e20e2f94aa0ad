/**
 * A protocol double of AWS Verified Permissions for tests: an HTTP server speaking AWS JSON 1.0
 * (`X-Amz-Target: VerifiedPermissions.IsAuthorized`, reference/protocols.md section 3) that decides with the real Cedar
 * engine against the policy stores it holds. Drive it through the real `@aws-sdk/client-verifiedpermissions` client
 * (endpoint override, dummy credentials); faults (delay, error status, dropped connection) can be injected.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { CedarValueJson, EntityJson, Schema } from '@cedar-policy/cedar-wasm/nodejs';
import { attributeValueToCedar } from '../../host/src/security/authz/adapters/avpAttributeValue.ts';

/** A policy store: its schema (validation mode STRICT when present) and its static policies by policy id. */
export interface AvpPolicyStore {
  schema?: Schema;
  policies: Record<string, string>;
}

/** What the next requests get instead of an answer. */
export type AvpFault =
  | { kind: 'delay'; ms: number }
  | { kind: 'error'; status: number; type: string; message?: string }
  | { kind: 'drop' };

/** A running double. */
export interface AvpDouble {
  /** Endpoint to give the SDK client (`endpoint`). */
  readonly url: string;
  /** IsAuthorized calls answered or failed so far. */
  readonly calls: number;
  putPolicyStore(id: string, store: AvpPolicyStore): void;
  /** Applies `fault` to the next `count` requests (default: every request until cleared). */
  injectFault(fault: AvpFault, count?: number): void;
  clearFaults(): void;
  close(): Promise<void>;
}

const TARGET_PREFIX = 'VerifiedPermissions.';

class AwsError extends Error {
  readonly status: number;
  readonly type: string;
  readonly extra: Record<string, unknown>;
  constructor(status: number, type: string, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.extra = extra;
  }
}

const validation = (message: string) => new AwsError(400, 'ValidationException', message, { fieldList: [] });

function identifier(value: unknown, field: string): { type: string; id: string } {
  const v = value as { entityType?: unknown; entityId?: unknown } | undefined;
  if (typeof v?.entityType !== 'string' || typeof v.entityId !== 'string' || v.entityType.length === 0 || v.entityId.length === 0) {
    throw validation(`1 validation error detected: Value at '${field}' failed to satisfy constraint: entityType and entityId are required`);
  }
  return { type: v.entityType, id: v.entityId };
}

function attributes(map: unknown, field: string): Record<string, CedarValueJson> {
  if (map === undefined) return {};
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw validation(`Value at '${field}' must be a map`);
  const out: Record<string, CedarValueJson> = {};
  for (const [k, v] of Object.entries(map)) {
    try {
      out[k] = attributeValueToCedar(v);
    } catch (error) {
      throw validation(`Value at '${field}.${k}' is not a valid AttributeValue: ${(error as Error).message}`);
    }
  }
  return out;
}

function parseJsonField(text: unknown, field: string): unknown {
  if (typeof text !== 'string') throw validation(`Value at '${field}' must be a string`);
  try {
    return JSON.parse(text);
  } catch {
    throw validation(`Value at '${field}' is not valid JSON`);
  }
}

function isAuthorized(stores: Map<string, AvpPolicyStore>, body: Record<string, unknown>): Record<string, unknown> {
  const storeId = body['policyStoreId'];
  if (typeof storeId !== 'string' || storeId.length === 0) throw validation("1 validation error detected: Value null at 'policyStoreId' failed to satisfy constraint: Member must not be null");
  const store = stores.get(storeId);
  if (store === undefined) throw new AwsError(404, 'ResourceNotFoundException', `Policy store ${storeId} not found`, { resourceId: storeId, resourceType: 'POLICY_STORE' });
  const principal = identifier(body['principal'], 'principal');
  const action = body['action'] as { actionType?: unknown; actionId?: unknown } | undefined;
  if (typeof action?.actionType !== 'string' || typeof action.actionId !== 'string') throw validation("Value at 'action' failed to satisfy constraint: actionType and actionId are required");
  const resource = identifier(body['resource'], 'resource');
  const ctx = body['context'] as { contextMap?: unknown; cedarJson?: unknown } | undefined;
  const context = ctx?.cedarJson !== undefined ? (parseJsonField(ctx.cedarJson, 'context.cedarJson') as Record<string, CedarValueJson>) : attributes(ctx?.contextMap, 'context.contextMap');
  const ents = body['entities'] as { entityList?: unknown; cedarJson?: unknown } | undefined;
  let entities: EntityJson[];
  if (ents?.cedarJson !== undefined) {
    entities = parseJsonField(ents.cedarJson, 'entities.cedarJson') as EntityJson[];
  } else {
    const list = ents?.entityList ?? [];
    if (!Array.isArray(list)) throw validation("Value at 'entities.entityList' must be a list");
    entities = list.map((item: { identifier?: unknown; attributes?: unknown; parents?: unknown }, i) => ({
      uid: identifier(item.identifier, `entities.entityList.${i}.identifier`),
      attrs: attributes(item.attributes, `entities.entityList.${i}.attributes`),
      parents: (Array.isArray(item.parents) ? item.parents : []).map((p: unknown, j: number) => identifier(p, `entities.entityList.${i}.parents.${j}`)),
    }));
  }
  const answer = cedar.isAuthorized({
    principal,
    action: { type: action.actionType, id: action.actionId },
    resource,
    context,
    policies: { staticPolicies: store.policies },
    entities,
    ...(store.schema === undefined ? {} : { schema: store.schema, validateRequest: true }),
  });
  if (answer.type === 'failure') throw validation(answer.errors.map((e) => e.message).join('; '));
  const { decision, diagnostics } = answer.response;
  return {
    decision: decision === 'allow' ? 'ALLOW' : 'DENY',
    determiningPolicies: diagnostics.reason.map((policyId) => ({ policyId })),
    errors: diagnostics.errors.map((e) => ({ errorDescription: `${e.policyId}: ${e.error.message}` })),
  };
}

/** Starts the double on a free loopback port. */
export async function startAvpDouble(stores: Record<string, AvpPolicyStore> = {}): Promise<AvpDouble> {
  const held = new Map(Object.entries(stores));
  const faults: Array<{ fault: AvpFault; left: number }> = [];
  const sockets = new Set<Socket>();
  let calls = 0;

  const send = (res: ServerResponse, status: number, payload: unknown, errorType?: string): void => {
    const text = JSON.stringify(payload);
    const headers: Record<string, string | number> = { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': randomUUID() };
    if (errorType !== undefined) headers['x-amzn-errortype'] = errorType;
    res.writeHead(status, headers).end(text);
  };
  const sendError = (res: ServerResponse, e: AwsError): void => send(res, e.status, { __type: e.type, message: e.message, ...e.extra }, e.type);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    calls++;
    const next = faults[0];
    if (next !== undefined) {
      if (--next.left === 0) faults.shift();
      if (next.fault.kind === 'drop') {
        req.socket.destroy();
        return;
      }
      if (next.fault.kind === 'delay') await new Promise((r) => setTimeout(r, (next.fault as { ms: number }).ms));
      if (next.fault.kind === 'error') return sendError(res, new AwsError(next.fault.status, next.fault.type, next.fault.message ?? `${next.fault.type} injected by the test`));
    }
    if (req.method !== 'POST' || req.url !== '/') return sendError(res, new AwsError(404, 'UnknownOperationException', `${req.method} ${req.url} is not an operation`));
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.0')) return sendError(res, new AwsError(400, 'SerializationException', 'expected Content-Type application/x-amz-json-1.0'));
    if (!(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) return sendError(res, new AwsError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token'));
    const target = req.headers['x-amz-target'];
    if (typeof target !== 'string' || !target.startsWith(TARGET_PREFIX)) return sendError(res, new AwsError(400, 'UnknownOperationException', 'missing or foreign X-Amz-Target'));
    const operation = target.slice(TARGET_PREFIX.length);
    if (operation !== 'IsAuthorized') return sendError(res, new AwsError(400, 'UnknownOperationException', `the double implements IsAuthorized only, not ${operation}`));
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return sendError(res, new AwsError(400, 'SerializationException', 'the body is not JSON'));
    }
    try {
      send(res, 200, isAuthorized(held, body));
    } catch (error) {
      if (error instanceof AwsError) return sendError(res, error);
      sendError(res, new AwsError(500, 'InternalServerException', (error as Error).message));
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, new AwsError(500, 'InternalServerException', String(error)));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    putPolicyStore: (id, store) => void held.set(id, store),
    injectFault: (fault, count = Number.POSITIVE_INFINITY) => void faults.push({ fault, left: count }),
    clearFaults: () => void faults.splice(0),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
