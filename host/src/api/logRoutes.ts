import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { toWorkerManagerError, WorkerManagerError, type LogOptions } from '@worker-manager/plugin-sdk';
import type { WorkerService } from '../workers/WorkerService.ts';
import { apiErrorBody } from './apiErrorBody.ts';
import { ApiError, LogChunk, LogsQuery, WorkerParams } from './apiSchemas.ts';
import { drained, startEventStream } from './eventStream.ts';
import { operationContext, paramOf } from './routeConfig.ts';

/** The one header the logs route reads; declared so the OpenAPI document shows it (checked in `resumeSeq`). */
const LogsHeaders = Type.Object({ 'last-event-id': Type.Optional(Type.String({ description: 'seq of the last log event seen; resume after it' })) });

/** Open follow streams, so that closing the server can end them instead of waiting for them. */
export type LogStreams = Set<{ end(): void }>;


/** The seq to resume from after a reconnect: the header holds the last seq the client saw, and sinceSeq is inclusive. */
function resumeSeq(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !/^\d{1,15}$/.test(header)) {
    throw new WorkerManagerError('WM_ERR_VALIDATION', 'Last-Event-ID must be the seq of a log event', { details: { path: '/headers/last-event-id' } });
  }
  return Number(header) + 1;
}


/**
 * `GET /v1/workers/{id}/logs`: a JSON array of chunks, or with `follow=true` Server-Sent Events, one `log` event per
 * chunk with `id: <seq>`, so a client that reconnects with `Last-Event-ID` resumes after the last line it saw, with
 * nothing lost or repeated. The stream ends with an `end` event when the worker's output ends, or an `error` event.
 */
export function registerLogRoutes(app: FastifyInstance, workers: WorkerService, streams: LogStreams): void {
  app.get<{ Params: WorkerParams; Querystring: LogsQuery }>(
    '/v1/workers/:id/logs',
    {
      schema: {
        summary: 'Read a worker\'s logs, or follow them as Server-Sent Events',
        description: 'Without `follow`: a JSON array of chunks. With `follow=true`: Server-Sent Events, one `log` event per chunk with `id: <seq>` and '
          + 'the chunk as JSON; a reconnect with `Last-Event-ID` resumes after that seq (it wins over `sinceSeq`); `end` when the output ends, '
          + '`error` (an ApiError body) on failure.',
        params: WorkerParams, querystring: LogsQuery, headers: LogsHeaders,
        produces: ['application/json', 'text/event-stream'],
        response: { 200: Type.Array(LogChunk), '4xx': ApiError, '5xx': ApiError },
      },
      config: { action: 'worker:logs', resource: (req) => ({ type: 'Worker', id: paramOf(req, 'params', 'id') }) },
    },
    async (req, reply) => {
      const { follow, tailLines, stdout, stderr } = req.query;
      const sinceSeq = resumeSeq(req.headers['last-event-id']) ?? req.query.sinceSeq;
      const options: LogOptions = {
        ...(sinceSeq === undefined ? {} : { sinceSeq }),
        ...(tailLines === undefined ? {} : { tailLines }),
        ...(stdout === undefined ? {} : { stdout }),
        ...(stderr === undefined ? {} : { stderr }),
      };
      if (follow !== true) {
        const chunks: LogChunk[] = [];
        for await (const chunk of await workers.getLogs(req.params.id, options, operationContext(req))) chunks.push(chunk);
        return chunks;
      }
      // Opened before the response starts, so an unknown worker or a provider without follow is a plain 4xx.
      const stream = await workers.getLogs(req.params.id, { ...options, follow: true }, operationContext(req));
      reply.hijack();
      const res = reply.raw;
      const keepAlive = startEventStream(res, req.id);
      const entry = {
        end: () => {
          stream.cancel();
          if (!res.writableEnded) res.end();
        },
      };
      streams.add(entry);
      res.on('close', () => stream.cancel());
      try {
        for await (const chunk of stream) {
          if (res.destroyed) break;
          if (!res.write(`id: ${chunk.seq}\nevent: log\ndata: ${JSON.stringify(chunk)}\n\n`)) await drained(res);
        }
        if (!res.destroyed) res.write('event: end\ndata: {}\n\n');
      } catch (error) {
        if (!res.destroyed) res.write(`event: error\ndata: ${JSON.stringify(apiErrorBody(toWorkerManagerError(error), req.id).body)}\n\n`);
      } finally {
        clearInterval(keepAlive);
        streams.delete(entry);
        if (!res.writableEnded) res.end();
      }
    },
  );
}
