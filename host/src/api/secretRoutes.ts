import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hostError } from '../errors.ts';
import type { AuthzResource } from '../security/authz/Authorizer.ts';
import {
  ApiError, RotationList, RotationRecord, RotationResult, SecretActionBody, SecretParams, SecretQuery, SecretVersionList,
} from './apiSchemas.ts';
import { callerOf, paramOf } from './routeConfig.ts';
import type { SecretRotation, SecretRotationRequest } from './SecretRotation.ts';

const errors = { '4xx': ApiError, '5xx': ApiError };

function secretResource(req: FastifyRequest): AuthzResource {
  const body = req.body as { credentials?: unknown } | undefined;
  const credentials = typeof body?.credentials === 'string' ? body.credentials : paramOf(req, 'query', 'credentials');
  return { type: 'Secret', id: paramOf(req, 'params', 'name'), ...(credentials === '*' ? {} : { credentials }) };
}

/** Only the record's own fields: an engine that grows a field must not leak it through the API unreviewed. */
function publicRecord(record: RotationRecord): RotationRecord {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(RotationRecord.properties)) {
    const value = (record as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out as RotationRecord;
}

/**
 * Secret routes over the RotationEngine: versions (metadata only), rotation records, rotate, rollback. None of them ever answers a
 * secret value. Without an engine each answers 503 HOST_ERR_SECRETS_NOT_CONFIGURED, so the routes (and the OpenAPI
 * document) are the same on every host.
 */
export function registerSecretRoutes(app: FastifyInstance, rotation: SecretRotation | undefined): void {
  const engine = (): SecretRotation => {
    if (rotation === undefined) {
      throw hostError('HOST_ERR_SECRETS_NOT_CONFIGURED', 'this host has no secrets configuration: no RotationEngine serves the secrets routes');
    }
    return rotation;
  };
  const request = (req: FastifyRequest<{ Params: SecretParams }>, credentials: string | undefined): SecretRotationRequest => {
    const caller = callerOf(req);
    return {
      name: req.params.name,
      requester: caller?.id ?? 'anonymous',
      correlationId: req.id,
      ...(credentials === undefined ? {} : { credentials }),
      ...(caller?.tenant === undefined ? {} : { tenant: caller.tenant }),
    };
  };

  app.get<{ Params: SecretParams; Querystring: SecretQuery }>(
    '/v1/secrets/:name/versions',
    {
      schema: { summary: 'List the versions of a secret (metadata, never values)', params: SecretParams, querystring: SecretQuery, response: { 200: SecretVersionList, ...errors } },
      config: { action: 'secret:read', resource: secretResource },
    },
    async (req) => {
      const { credentials } = req.query;
      const { name, tenant } = request(req, credentials);
      const versions = await engine().listVersions({ name, ...(credentials === undefined ? {} : { credentials }), ...(tenant === undefined ? {} : { tenant }) });
      // Field by field: whatever else a store puts in a version stays out of the answer.
      return {
        name,
        versions: versions.map((v) => ({
          version: v.version, status: v.status, stages: [...v.stages], createdAt: v.createdAt, ...(v.expiresAt === undefined ? {} : { expiresAt: v.expiresAt }),
          ...(v.failure === undefined ? {} : { failure: { rotationId: v.failure.rotationId, step: v.failure.step, code: v.failure.code, failedAt: v.failure.failedAt } }),
        })),
      };
    },
  );

  app.get<{ Params: SecretParams; Querystring: SecretQuery }>(
    '/v1/secrets/:name/rotations',
    {
      schema: {
        summary: 'List the rotation and rollback records of a secret, oldest first (state, step, versions, retry state of an unfinished rollback)',
        params: SecretParams, querystring: SecretQuery, response: { 200: RotationList, ...errors },
      },
      config: { action: 'secret:read', resource: secretResource },
    },
    async (req) => {
      const { credentials } = req.query;
      const { name, tenant } = request(req, credentials);
      const rotations = await engine().rotations({ name, ...(credentials === undefined ? {} : { credentials }), ...(tenant === undefined ? {} : { tenant }) });
      return { name, rotations: rotations.map(publicRecord) };
    },
  );

  app.post<{ Params: SecretParams; Body: SecretActionBody }>(
    '/v1/secrets/:name/rotate',
    {
      schema: { summary: 'Rotate a secret now (manual trigger)', params: SecretParams, body: SecretActionBody, response: { 200: RotationResult, ...errors } },
      config: { action: 'secret:rotate', resource: secretResource },
    },
    async (req) => ({ rotation: publicRecord(await engine().rotate({ ...request(req, req.body.credentials), trigger: 'manual' })) }),
  );

  app.post<{ Params: SecretParams; Body: SecretActionBody }>(
    '/v1/secrets/:name/rollback',
    {
      schema: { summary: 'Roll a secret back to its previous version', params: SecretParams, body: SecretActionBody, response: { 200: RotationResult, ...errors } },
      config: { action: 'secret:rollback', resource: secretResource },
    },
    async (req) => ({ rotation: publicRecord(await engine().rollback(request(req, req.body.credentials))) }),
  );
}
