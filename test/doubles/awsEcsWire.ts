/**
 * The wire side of the ECS + CloudWatch Logs double: AWS JSON 1.1 over HTTP (`POST /`, `X-Amz-Target:
 * <prefix><Operation>`, `application/x-amz-json-1.1`), SigV4 checked with the secret key the double holds for each
 * access key id (signing name and region of the credential scope included), AWS's error shape
 * (`{"__type", "message"}` plus `x-amzn-errortype`), and injected faults. The services themselves are plain
 * functions from a request body to a response body (awsEcs.ts).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { canonicalRequest, expectedSignature, parseAmzDate, parseAuthorization, signaturesMatch } from './sigv4.ts';

/** A JSON request or response body. */
export type Body = Record<string, unknown>;

/** An error the double answers as AWS does: HTTP status, `__type` and message. */
export class AwsError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/** What a request gets instead of an answer. */
export type WireFault = { kind: 'throttle' } | { kind: 'error'; status: number; type: string; message?: string };

/** One request the double received. */
export interface RecordedCall {
  operation: string;
  status: number;
  errorType?: string;
}

/** One AWS service on the shared port. */
export interface AwsJsonService {
  /** `AmazonEC2ContainerServiceV20141113.`, `Logs_20140328.` */
  targetPrefix: string;
  /** The SigV4 signing name of the credential scope: `ecs`, `logs`. */
  signingName: string;
  /** `__type` of an unexpected failure (ECS: ServerException, Logs: ServiceUnavailableException). */
  internalErrorType: string;
  operations: Record<string, (body: Body) => Body | Promise<Body>>;
}

export interface AwsJsonServer {
  readonly url: string;
  readonly calls: RecordedCall[];
  close(): Promise<void>;
}

const CONTENT_TYPE = 'application/x-amz-json-1.1';
const SIGNATURE_SKEW_MS = 5 * 60 * 1000;

/** Starts the server on a free port of 127.0.0.1. */
export async function startAwsJsonServer(options: {
  region: string;
  /** Access key id to secret access key. */
  secrets: ReadonlyMap<string, string>;
  services: readonly AwsJsonService[];
  /** The fault for this request, if any (asked once authentication passed). */
  takeFault(operation: string): WireFault | undefined;
}): Promise<AwsJsonServer> {
  const { region, secrets, services } = options;
  const calls: RecordedCall[] = [];
  const sockets = new Set<Socket>();

  function authenticate(req: IncomingMessage, raw: Buffer, signingName: string): void {
    const auth = parseAuthorization(req.headers.authorization);
    if (auth === undefined) {
      if (req.headers.authorization === undefined) throw new AwsError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      throw new AwsError(400, 'IncompleteSignatureException', "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.");
    }
    const secret = secrets.get(auth.accessKeyId);
    if (secret === undefined) throw new AwsError(400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    if (auth.service !== signingName || auth.region !== region) throw new AwsError(400, 'InvalidSignatureException', `Credential should be scoped to correct service: '${signingName}'.`);
    const amzDate = req.headers['x-amz-date'];
    const at = parseAmzDate(typeof amzDate === 'string' ? amzDate : undefined);
    if (at === undefined || Math.abs(Date.now() - at) > SIGNATURE_SKEW_MS) throw new AwsError(400, 'InvalidSignatureException', 'Signature expired or X-Amz-Date is missing.');
    const expected = expectedSignature(secret, amzDate as string, auth, canonicalRequest(req, auth.signedHeaders, raw));
    if (!signaturesMatch(expected, auth.signature)) {
      throw new AwsError(
        400,
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    }
  }

  function send(res: ServerResponse, status: number, body: Body, errorType?: string): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': CONTENT_TYPE,
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
      ...(errorType === undefined ? {} : { 'x-amzn-errortype': `${errorType}:` }),
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const target = typeof req.headers['x-amz-target'] === 'string' ? req.headers['x-amz-target'] : '';
    const service = services.find((s) => target.startsWith(s.targetPrefix));
    const operation = service === undefined ? '' : target.slice(service.targetPrefix.length);
    const record: RecordedCall = { operation, status: 200 };
    calls.push(record);
    try {
      if (req.method !== 'POST' || (req.url ?? '/') !== '/') throw new AwsError(404, 'UnknownOperationException', '');
      authenticate(req, raw, service?.signingName ?? services[0]?.signingName ?? '');
      const handler = service !== undefined && Object.hasOwn(service.operations, operation) ? service.operations[operation] : undefined;
      if (handler === undefined) throw new AwsError(400, 'UnknownOperationException', '');
      const fault = options.takeFault(operation);
      if (fault?.kind === 'throttle') throw new AwsError(400, 'ThrottlingException', 'Rate exceeded');
      if (fault?.kind === 'error') throw new AwsError(fault.status, fault.type, fault.message ?? `An internal error occurred (${fault.type}).`);
      if (req.headers['content-type'] !== CONTENT_TYPE) throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      let body: unknown;
      try {
        body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
      } catch {
        throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      send(res, 200, await handler(body as Body));
    } catch (error) {
      const e = error instanceof AwsError ? error : new AwsError(500, service?.internalErrorType ?? 'InternalFailure', 'An error occurred on the server side.');
      record.status = e.status;
      record.errorType = e.type;
      send(res, e.status, { __type: e.type, message: e.message }, e.type);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
