/**
 * A protocol double of AWS Secrets Manager for tests: an HTTP server speaking AWS JSON 1.1 (`POST /`,
 * `X-Amz-Target: secretsmanager.<Op>`, reference/protocols.md section 2) that keeps secrets, versions, staging labels
 * and tags, checks SigV4 against the secret key it holds for each access key id, applies a per-principal deny list
 * (AccessDeniedException), and injects faults on demand (throttling, 5xx, hung requests, connection resets).
 * Drive it through the real `@aws-sdk/client-secrets-manager` client with `endpoint` set to {@link SecretsManagerDouble.url}.
 *
 * Operations: CreateSecret, GetSecretValue, PutSecretValue, UpdateSecretVersionStage, ListSecretVersionIds,
 * DescribeSecret, TagResource, UntagResource. The staging-label rules 1 to 7 of protocols.md are enforced here.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { canonicalRequest, expectedSignature, formatAmzDate, parseAmzDate, parseAuthorization, signaturesMatch } from './sigv4.ts';

/** An IAM principal the double knows: its key pair, and the actions an attached policy denies it. */
export interface AwsPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry it as `X-Amz-Security-Token` (temporary credentials). */
  sessionToken?: string;
  /** `arn:aws:iam::<account>:user/<name>` by default. */
  arn?: string;
  /** Actions (`secretsmanager:GetSecretValue`) refused with AccessDeniedException; `'*'` refuses every action. */
  deny?: readonly string[] | '*';
}

/** What the next matching requests get instead of an answer. */
export type SecretsManagerFault =
  /** 400 ThrottlingException `Rate exceeded`, which the SDK treats as throttling. */
  | { kind: 'throttle' }
  /** Any status and `__type`, e.g. 500 InternalServiceError or 503 ServiceUnavailable. */
  | { kind: 'error'; status: number; type: string; message?: string }
  /** The request is read and never answered (until the double closes). */
  | { kind: 'hang' }
  /** The TCP connection is reset (RST) without an answer. */
  | { kind: 'reset' }
  /** The request is carried out, then the connection is reset before the answer: a lost answer to a write. */
  | { kind: 'lose-answer' }
  /** The request is carried out and never answered (until the double closes): a caller that dies after its write landed. */
  | { kind: 'apply-and-hang' };

/** Which requests a fault applies to. */
export interface FaultOptions {
  /** How many requests get it; default every request until {@link SecretsManagerDouble.clearFaults}. */
  count?: number;
  /** Only this operation (`GetSecretValue`); default any. */
  operation?: string;
  /** Only while this holds, asked when a request arrives (say, once a promotion is done); default always. */
  when?: () => boolean;
}

/** One request the double received (after SigV4 was checked or refused). */
export interface RecordedCall {
  operation: string;
  accessKeyId: string | undefined;
  status: number;
  errorType?: string;
}

/** A version as the double holds it. */
export interface DoubleVersion {
  versionId: string;
  secretString?: string;
  secretBinary?: Buffer;
  stages: string[];
  createdDate: number;
}

/** A snapshot of one secret, for assertions. */
export interface DoubleSecret {
  name: string;
  arn: string;
  tags: Record<string, string>;
  versions: DoubleVersion[];
}

/** A running double. */
export interface SecretsManagerDouble {
  /** Endpoint for the SDK client (`endpoint`). */
  readonly url: string;
  readonly region: string;
  readonly accountId: string;
  /** Every request, in order. */
  readonly calls: readonly RecordedCall[];
  addPrincipal(principal: AwsPrincipal): void;
  /** Replaces the deny list of a known principal. */
  setDeny(accessKeyId: string, deny: readonly string[] | '*' | undefined): void;
  injectFault(fault: SecretsManagerFault, options?: FaultOptions): void;
  clearFaults(): void;
  /** Moves the double's clock (retention, signature expiry) forward. */
  advanceClock(ms: number): void;
  secret(name: string): DoubleSecret | undefined;
  close(): Promise<void>;
}

/** Options of {@link startSecretsManagerDouble}. */
export interface SecretsManagerDoubleOptions {
  region?: string;
  accountId?: string;
  principals?: readonly AwsPrincipal[];
}

const TARGET_PREFIX = 'secretsmanager.';
const CONTENT_TYPE = 'application/x-amz-json-1.1';
const NAME = /^[A-Za-z0-9/_+=.@-]+$/;
const MAX_SECRET_BYTES = 65_536;
const MAX_TAGS = 50;
const RETAINED_VERSIONS = 100;
const RETENTION_MS = 24 * 3600 * 1000;
const SIGNATURE_SKEW_MS = 5 * 60 * 1000;

class AwsError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

const notFound = (message = "Secrets Manager can't find the specified secret.") => new AwsError(400, 'ResourceNotFoundException', message);
const invalidParameter = (message: string) => new AwsError(400, 'InvalidParameterException', message);
const invalidRequest = (message: string) => new AwsError(400, 'InvalidRequestException', message);
const validation = (message: string) => new AwsError(400, 'ValidationException', `1 validation error detected: ${message}`);

interface StoredVersion {
  versionId: string;
  secretString?: string;
  secretBinary?: Buffer;
  stages: Set<string>;
  created: number;
  lastAccessed?: number;
}

interface StoredSecret {
  name: string;
  arn: string;
  created: number;
  lastChanged: number;
  lastAccessed?: number;
  description?: string;
  kmsKeyId?: string;
  tags: Map<string, string>;
  versions: Map<string, StoredVersion>;
}

interface ActiveFault {
  fault: SecretsManagerFault;
  remaining: number;
  operation?: string;
  when?: () => boolean;
}

type Body = Record<string, unknown>;

const seconds = (ms: number): number => ms / 1000;

function str(body: Body, field: string, required: false): string | undefined;
function str(body: Body, field: string, required: true): string;
function str(body: Body, field: string, required: boolean): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) {
    if (required) throw validation(`Value null at '${field[0]?.toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must not be null`);
    return undefined;
  }
  if (typeof v !== 'string') throw new AwsError(400, 'SerializationException', `Unexpected type for ${field}`);
  return v;
}

/** Starts the double on a free loopback port. */
export async function startSecretsManagerDouble(options: SecretsManagerDoubleOptions = {}): Promise<SecretsManagerDouble> {
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '123456789012';
  const principals = new Map<string, AwsPrincipal>();
  for (const p of options.principals ?? []) principals.set(p.accessKeyId, { ...p });
  const secrets = new Map<string, StoredSecret>();
  const calls: RecordedCall[] = [];
  let faults: ActiveFault[] = [];
  let clockOffset = 0;
  const now = (): number => Date.now() + clockOffset;
  const sockets = new Set<Socket>();

  const arnOf = (name: string): string => `arn:aws:secretsmanager:${region}:${accountId}:secret:${name}-${randomBytes(4).toString('base64url').slice(0, 6)}`;

  function lookup(secretId: string): StoredSecret {
    const secret = secretId.startsWith('arn:') ? [...secrets.values()].find((s) => s.arn === secretId) : secrets.get(secretId);
    if (secret === undefined) throw notFound();
    return secret;
  }

  function checkToken(token: string | undefined): void {
    if (token === undefined) return;
    if (token.length < 32) throw validation(`Value '${token}' at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32`);
    if (token.length > 64) throw validation(`Value '${token}' at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 64`);
  }

  /** Value fields of a write; the error messages never echo the value (AWS marks these members sensitive). */
  function valueOf(body: Body): { secretString?: string; secretBinary?: Buffer } | undefined {
    const s = str(body, 'SecretString', false);
    const b = str(body, 'SecretBinary', false);
    if (s !== undefined && b !== undefined) throw invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.");
    if (s !== undefined) {
      if (s.length > MAX_SECRET_BYTES || Buffer.byteLength(s, 'utf8') > MAX_SECRET_BYTES) {
        throw validation("Value at 'secretString' failed to satisfy constraint: Member must have length less than or equal to 65536");
      }
      return { secretString: s };
    }
    if (b !== undefined) {
      const bytes = Buffer.from(b, 'base64');
      if (bytes.length > MAX_SECRET_BYTES) throw validation("Value at 'secretBinary' failed to satisfy constraint: Member must have length less than or equal to 65536");
      return { secretBinary: bytes };
    }
    return undefined;
  }

  const sameValue = (v: StoredVersion, value: { secretString?: string; secretBinary?: Buffer }): boolean =>
    v.secretString === value.secretString && (v.secretBinary === undefined ? value.secretBinary === undefined : value.secretBinary !== undefined && v.secretBinary.equals(value.secretBinary));

  const holderOf = (secret: StoredSecret, label: string): StoredVersion | undefined => [...secret.versions.values()].find((v) => v.stages.has(label));

  /** Rule 1: a label sits on one version; moving it takes it off the holder. */
  function attach(secret: StoredSecret, label: string, target: StoredVersion): void {
    for (const v of secret.versions.values()) if (v !== target) v.stages.delete(label);
    target.stages.add(label);
  }

  /** Rule 5: moving AWSCURRENT moves AWSPREVIOUS to the version it left. */
  function moveCurrent(secret: StoredSecret, target: StoredVersion): void {
    const old = holderOf(secret, 'AWSCURRENT');
    attach(secret, 'AWSCURRENT', target);
    if (old !== undefined && old !== target) attach(secret, 'AWSPREVIOUS', old);
  }

  /** Rule 6: deprecated (unlabelled) versions beyond the 100 newest and older than 24 h are removed. */
  function prune(secret: StoredSecret): void {
    // Insertion order is creation order; versions made within one millisecond keep it.
    const newestFirst = [...secret.versions.values()].reverse();
    newestFirst.forEach((v, i) => {
      if (i >= RETAINED_VERSIONS && v.stages.size === 0 && now() - v.created > RETENTION_MS) secret.versions.delete(v.versionId);
    });
  }

  function addVersion(secret: StoredSecret, token: string, value: { secretString?: string; secretBinary?: Buffer }, stages: readonly string[] | undefined): StoredVersion {
    const version: StoredVersion = { versionId: token, ...value, stages: new Set(), created: now() };
    secret.versions.set(token, version);
    const labels = stages ?? ['AWSCURRENT'];
    for (const label of labels) {
      if (label === 'AWSCURRENT') moveCurrent(secret, version);
      else attach(secret, label, version);
    }
    // Rule 2: the first version with a value gets AWSCURRENT, whatever labels were asked for.
    if (holderOf(secret, 'AWSCURRENT') === undefined) version.stages.add('AWSCURRENT');
    secret.lastChanged = now();
    prune(secret);
    return version;
  }

  function tagsOf(value: unknown, field: string): Array<[string, string]> {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw new AwsError(400, 'SerializationException', `Unexpected type for ${field}`);
    return value.map((t: { Key?: unknown; Value?: unknown }) => {
      if (typeof t?.Key !== 'string' || t.Key.length < 1 || t.Key.length > 128) throw validation(`Value at '${field}.member.key' failed to satisfy constraint: Member must have length between 1 and 128`);
      if (t.Key.toLowerCase().startsWith('aws:')) throw invalidParameter('Invalid tag key. Tag keys beginning with aws: are reserved.');
      if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u.test(t.Key)) throw invalidParameter('Invalid tag key.');
      const v = typeof t.Value === 'string' ? t.Value : '';
      if (v.length > 256) throw validation(`Value at '${field}.member.value' failed to satisfy constraint: Member must have length less than or equal to 256`);
      return [t.Key, v];
    });
  }

  function applyTags(secret: StoredSecret, tags: Array<[string, string]>): void {
    const next = new Map(secret.tags);
    for (const [k, v] of tags) next.set(k, v);
    if (next.size > MAX_TAGS) throw invalidParameter(`Number of tags exceeds the limit of ${MAX_TAGS}.`);
    secret.tags = next;
  }

  const versionEntry = (v: StoredVersion): Body => ({
    VersionId: v.versionId,
    VersionStages: [...v.stages],
    CreatedDate: seconds(v.created),
    ...(v.lastAccessed === undefined ? {} : { LastAccessedDate: seconds(v.lastAccessed) }),
    KmsKeyIds: ['DefaultEncryptionKey'],
  });

  const operations: Record<string, (body: Body) => Body> = {
    CreateSecret(body) {
      const name = str(body, 'Name', true);
      if (name.length > 512) throw validation("Value at 'name' failed to satisfy constraint: Member must have length less than or equal to 512");
      if (!NAME.test(name)) throw invalidParameter('Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!');
      const token = str(body, 'ClientRequestToken', false);
      checkToken(token);
      const value = valueOf(body);
      const tags = tagsOf(body['Tags'], 'tags');
      if (secrets.has(name)) throw new AwsError(400, 'ResourceExistsException', `The operation failed because the secret ${name} already exists.`);
      if (value !== undefined && token === undefined) throw invalidRequest('You must provide a ClientRequestToken value. We recommend a UUID-type value.');
      const at = now();
      const secret: StoredSecret = { name, arn: arnOf(name), created: at, lastChanged: at, tags: new Map(), versions: new Map() };
      const description = str(body, 'Description', false);
      const kmsKeyId = str(body, 'KmsKeyId', false);
      if (description !== undefined) secret.description = description;
      if (kmsKeyId !== undefined) secret.kmsKeyId = kmsKeyId;
      applyTags(secret, tags);
      secrets.set(name, secret);
      const version = value === undefined ? undefined : addVersion(secret, token as string, value, ['AWSCURRENT']);
      return { ARN: secret.arn, Name: name, ...(version === undefined ? {} : { VersionId: version.versionId }), ReplicationStatus: [] };
    },

    GetSecretValue(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const versionId = str(body, 'VersionId', false);
      const stage = str(body, 'VersionStage', false);
      let version: StoredVersion | undefined;
      if (versionId !== undefined) {
        version = secret.versions.get(versionId);
        if (version === undefined) throw notFound(`Secrets Manager can't find the specified secret value for VersionId: ${versionId}`);
        if (stage !== undefined && !version.stages.has(stage)) throw invalidRequest('You provided a VersionStage that is not associated to the provided VersionId.');
      } else {
        const label = stage ?? 'AWSCURRENT';
        version = holderOf(secret, label);
        if (version === undefined) throw notFound(`Secrets Manager can't find the specified secret value for staging label: ${label}`);
      }
      const at = now();
      version.lastAccessed = at;
      secret.lastAccessed = at;
      return {
        ARN: secret.arn,
        Name: secret.name,
        VersionId: version.versionId,
        ...(version.secretString === undefined ? {} : { SecretString: version.secretString }),
        ...(version.secretBinary === undefined ? {} : { SecretBinary: version.secretBinary.toString('base64') }),
        VersionStages: [...version.stages],
        CreatedDate: seconds(version.created),
      };
    },

    PutSecretValue(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const token = str(body, 'ClientRequestToken', false);
      checkToken(token);
      const value = valueOf(body);
      if (value === undefined) throw invalidParameter('You must provide either SecretString or SecretBinary.');
      if (token === undefined) throw invalidRequest('You must provide a ClientRequestToken value. We recommend a UUID-type value.');
      const stagesIn = body['VersionStages'];
      if (stagesIn !== undefined && (!Array.isArray(stagesIn) || stagesIn.length < 1 || stagesIn.length > 20 || !stagesIn.every((s) => typeof s === 'string' && s.length >= 1 && s.length <= 256))) {
        throw validation("Value at 'versionStages' failed to satisfy constraint: Member must have length between 1 and 20");
      }
      // Rule 4: a known token is an idempotent repeat when the value matches, a conflict when it does not.
      const existing = secret.versions.get(token);
      if (existing !== undefined) {
        if (!sameValue(existing, value)) throw new AwsError(400, 'ResourceExistsException', "You can't modify an existing version, you can only create a new version.");
        return { ARN: secret.arn, Name: secret.name, VersionId: existing.versionId, VersionStages: [...existing.stages] };
      }
      const version = addVersion(secret, token, value, stagesIn as string[] | undefined);
      return { ARN: secret.arn, Name: secret.name, VersionId: version.versionId, VersionStages: [...version.stages] };
    },

    UpdateSecretVersionStage(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const label = str(body, 'VersionStage', true);
      if (label.length > 256) throw validation("Value at 'versionStage' failed to satisfy constraint: Member must have length less than or equal to 256");
      const moveTo = str(body, 'MoveToVersionId', false);
      const removeFrom = str(body, 'RemoveFromVersionId', false);
      const holder = holderOf(secret, label);
      if (moveTo !== undefined) {
        const target = secret.versions.get(moveTo);
        if (target === undefined) throw notFound(`Secrets Manager can't find the specified secret version: ${moveTo}`);
        if (holder !== undefined && holder !== target && removeFrom !== holder.versionId) {
          throw invalidParameter(
            `The parameter RemoveFromVersionId can't be empty. Staging label ${label} is currently attached to version ${holder.versionId}, so you must explicitly reference that version in RemoveFromVersionId.`,
          );
        }
        if (holder !== target) {
          if (label === 'AWSCURRENT') moveCurrent(secret, target);
          else attach(secret, label, target);
        }
      } else {
        if (removeFrom === undefined) throw invalidParameter('You must specify MoveToVersionId or RemoveFromVersionId.');
        const from = secret.versions.get(removeFrom);
        if (from === undefined) throw notFound(`Secrets Manager can't find the specified secret version: ${removeFrom}`);
        if (!from.stages.has(label)) throw invalidParameter(`The staging label ${label} is not currently attached to version ${removeFrom}.`);
        if (label === 'AWSCURRENT') {
          throw invalidParameter(`You can't remove the staging label AWSCURRENT from version ${removeFrom}: move it to another version with MoveToVersionId instead.`);
        }
        from.stages.delete(label);
      }
      secret.lastChanged = now();
      prune(secret);
      return { ARN: secret.arn, Name: secret.name };
    },

    ListSecretVersionIds(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const max = body['MaxResults'] === undefined ? 100 : Number(body['MaxResults']);
      if (!Number.isInteger(max) || max < 1 || max > 100) throw validation(`Value '${String(body['MaxResults'])}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100`);
      const includeDeprecated = body['IncludeDeprecated'] === true;
      const all = [...secret.versions.values()].filter((v) => includeDeprecated || v.stages.size > 0);
      const next = str(body, 'NextToken', false);
      let start = 0;
      if (next !== undefined) {
        const decoded = /^o:(\d+)$/.exec(Buffer.from(next, 'base64url').toString('utf8'));
        if (decoded === null) throw new AwsError(400, 'InvalidNextTokenException', 'The NextToken value is invalid.');
        start = Number(decoded[1]);
      }
      const page = all.slice(start, start + max);
      const end = start + page.length;
      return {
        Versions: page.map(versionEntry),
        ...(end < all.length ? { NextToken: Buffer.from(`o:${end}`).toString('base64url') } : {}),
        ARN: secret.arn,
        Name: secret.name,
      };
    },

    DescribeSecret(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const stages: Record<string, string[]> = {};
      for (const v of secret.versions.values()) if (v.stages.size > 0) stages[v.versionId] = [...v.stages];
      return {
        ARN: secret.arn,
        Name: secret.name,
        ...(secret.description === undefined ? {} : { Description: secret.description }),
        ...(secret.kmsKeyId === undefined ? {} : { KmsKeyId: secret.kmsKeyId }),
        RotationEnabled: false,
        LastChangedDate: seconds(secret.lastChanged),
        ...(secret.lastAccessed === undefined ? {} : { LastAccessedDate: seconds(Math.floor(secret.lastAccessed / 86_400_000) * 86_400_000) }),
        Tags: [...secret.tags].map(([Key, Value]) => ({ Key, Value })),
        VersionIdsToStages: stages,
        CreatedDate: seconds(secret.created),
      };
    },

    TagResource(body) {
      const secret = lookup(str(body, 'SecretId', true));
      if (body['Tags'] === undefined) throw validation("Value null at 'tags' failed to satisfy constraint: Member must not be null");
      applyTags(secret, tagsOf(body['Tags'], 'tags'));
      return {};
    },

    UntagResource(body) {
      const secret = lookup(str(body, 'SecretId', true));
      const keys = body['TagKeys'];
      if (!Array.isArray(keys)) throw validation("Value null at 'tagKeys' failed to satisfy constraint: Member must not be null");
      for (const k of keys) if (typeof k === 'string') secret.tags.delete(k);
      return {};
    },
  };

  /** Resource an IAM policy would be evaluated against. */
  function resourceOf(operation: string, body: Body): string {
    const id = typeof body['SecretId'] === 'string' ? body['SecretId'] : typeof body['Name'] === 'string' ? body['Name'] : '*';
    if (operation === 'CreateSecret') return `arn:aws:secretsmanager:${region}:${accountId}:secret:${id}`;
    if (id.startsWith('arn:')) return id;
    return secrets.get(id)?.arn ?? `arn:aws:secretsmanager:${region}:${accountId}:secret:${id}`;
  }

  function authorize(principal: AwsPrincipal, operation: string, body: Body): void {
    const actions = [`secretsmanager:${operation}`];
    // Tagging a secret at creation also needs the TagResource permission.
    if (operation === 'CreateSecret' && Array.isArray(body['Tags']) && body['Tags'].length > 0) actions.push('secretsmanager:TagResource');
    for (const action of actions) {
      if (principal.deny === '*' || principal.deny?.includes(action) === true) {
        const arn = principal.arn ?? `arn:aws:iam::${accountId}:user/${principal.accessKeyId}`;
        throw new AwsError(
          400,
          'AccessDeniedException',
          `User: ${arn} is not authorized to perform: ${action} on resource: ${resourceOf(operation, body)} because no identity-based policy allows the ${action} action`,
        );
      }
    }
  }

  /** SigV4, as AWS checks it: known key, scope, clock skew, then the signature itself. */
  function authenticate(req: IncomingMessage, raw: Buffer): AwsPrincipal {
    const header = req.headers.authorization;
    if (header === undefined) throw new AwsError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    const auth = parseAuthorization(header);
    if (auth === undefined) {
      throw new AwsError(400, 'IncompleteSignatureException', `Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization=${header.split(' ')[0] ?? ''}`);
    }
    const principal = principals.get(auth.accessKeyId);
    if (principal === undefined) throw new AwsError(400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    const sessionToken = req.headers['x-amz-security-token'];
    if ((principal.sessionToken ?? undefined) !== (typeof sessionToken === 'string' ? sessionToken : undefined)) {
      throw new AwsError(400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    }
    if (auth.service !== 'secretsmanager' || auth.region !== region) {
      throw new AwsError(400, 'InvalidSignatureException', `Credential should be scoped to a valid region, not '${auth.region}'. `);
    }
    for (const required of ['host', 'x-amz-date']) {
      if (!auth.signedHeaders.includes(required)) throw new AwsError(400, 'InvalidSignatureException', `'${required}' must be a 'SignedHeader' in the AWS Authorization.`);
    }
    const amzDate = req.headers['x-amz-date'];
    const signedAt = parseAmzDate(typeof amzDate === 'string' ? amzDate : undefined);
    if (signedAt === undefined || !(amzDate as string).startsWith(auth.date)) throw new AwsError(400, 'IncompleteSignatureException', 'Date must be in ISO-8601 \'basic format\'.');
    const at = now();
    if (Math.abs(at - signedAt) > SIGNATURE_SKEW_MS) {
      throw new AwsError(
        400,
        'InvalidSignatureException',
        `Signature expired: ${amzDate as string} is now earlier than ${formatAmzDate(at - SIGNATURE_SKEW_MS)} (${formatAmzDate(at)} - 5 min.)`,
      );
    }
    const expected = expectedSignature(principal.secretAccessKey, amzDate as string, auth, canonicalRequest(req, auth.signedHeaders, raw));
    if (!signaturesMatch(expected, auth.signature)) {
      throw new AwsError(
        400,
        'InvalidSignatureException',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    }
    return principal;
  }

  function takeFault(operation: string): SecretsManagerFault | undefined {
    const active = faults.find((f) => f.remaining > 0 && (f.operation === undefined || f.operation === operation) && (f.when === undefined || f.when()));
    if (active === undefined) return undefined;
    active.remaining -= 1;
    faults = faults.filter((f) => f.remaining > 0);
    return active.fault;
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
    const target = req.headers['x-amz-target'];
    const operation = typeof target === 'string' && target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    const record: RecordedCall = { operation, accessKeyId: parseAuthorization(req.headers.authorization)?.accessKeyId, status: 200 };
    calls.push(record);
    try {
      if (req.method !== 'POST' || (req.url ?? '/') !== '/') throw new AwsError(404, 'UnknownOperationException', '');
      const principal = authenticate(req, raw);
      const fault = takeFault(operation);
      if (fault?.kind === 'hang') {
        record.status = 0;
        record.errorType = 'hang';
        return;
      }
      if (fault?.kind === 'reset') {
        record.status = 0;
        record.errorType = 'reset';
        req.socket.resetAndDestroy();
        return;
      }
      if (fault?.kind === 'throttle') throw new AwsError(400, 'ThrottlingException', 'Rate exceeded');
      if (fault?.kind === 'error') throw new AwsError(fault.status, fault.type, fault.message ?? `An internal error occurred (${fault.type}).`);
      const handler = Object.hasOwn(operations, operation) ? operations[operation] : undefined;
      if (handler === undefined) throw new AwsError(400, 'UnknownOperationException', '');
      if (req.headers['content-type'] !== CONTENT_TYPE) throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      let body: unknown;
      try {
        body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
      } catch {
        throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AwsError(400, 'SerializationException', 'Start of structure or map found where not expected.');
      authorize(principal, operation, body as Body);
      const answer = handler(body as Body);
      if (fault?.kind === 'lose-answer') {
        record.errorType = 'answer-lost';
        req.socket.resetAndDestroy();
        return;
      }
      if (fault?.kind === 'apply-and-hang') {
        record.status = 0;
        record.errorType = 'answer-withheld';
        return;
      }
      send(res, 200, answer);
    } catch (error) {
      const e = error instanceof AwsError ? error : new AwsError(500, 'InternalServiceError', 'An error occurred on the server side.');
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
    region,
    accountId,
    calls,
    addPrincipal(principal) {
      principals.set(principal.accessKeyId, { ...principal });
    },
    setDeny(accessKeyId, deny) {
      const p = principals.get(accessKeyId);
      if (p === undefined) throw new Error(`unknown access key id ${accessKeyId}`);
      if (deny === undefined) delete p.deny;
      else p.deny = deny;
    },
    injectFault(fault, opts = {}) {
      faults.push({ fault, remaining: opts.count ?? Number.POSITIVE_INFINITY, ...(opts.operation === undefined ? {} : { operation: opts.operation }), ...(opts.when === undefined ? {} : { when: opts.when }) });
    },
    clearFaults() {
      faults = [];
    },
    advanceClock(ms) {
      clockOffset += ms;
    },
    secret(name) {
      const s = secrets.get(name);
      if (s === undefined) return undefined;
      return {
        name: s.name,
        arn: s.arn,
        tags: Object.fromEntries(s.tags),
        versions: [...s.versions.values()].map((v) => ({
          versionId: v.versionId,
          ...(v.secretString === undefined ? {} : { secretString: v.secretString }),
          ...(v.secretBinary === undefined ? {} : { secretBinary: Buffer.from(v.secretBinary) }),
          stages: [...v.stages],
          createdDate: v.created,
        })),
      };
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
