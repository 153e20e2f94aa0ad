import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { EventBus } from '../bus/EventBus.ts';
import type { EventEnvelope } from '../bus/EventEnvelope.ts';
import { subjectIsSubset, type Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import { ApiError, EventsQuery } from './apiSchemas.ts';
import type { LogStreams } from './logRoutes.ts';
import { drained, startEventStream } from './eventStream.ts';
import { callerOf } from './routeConfig.ts';


const asList = (v: string | string[] | undefined): Set<string> | undefined => (v === undefined ? undefined : new Set(Array.isArray(v) ? v : [v]));


/**
 * `GET /v1/events`: bus events as Server-Sent Events, from the moment the stream opens (the `: open` comment is sent
 * once the subscription receives events). Each event is `id: <CloudEvents id>` and `data: <envelope JSON>` with no
 * `event:` field, so an EventSource's `onmessage` gets it; the id is the bus's de-duplication id, so a client can tell
 * which events it saw. There is no replay: a reconnect starts from its own moment. A caller whose principal has a
 * tenant never receives events tagged with another tenant.
 */
export function registerEventRoutes(app: FastifyInstance, bus: EventBus | undefined, subjects: Subjects, streams: LogStreams): void {
  const everything = `${subjects.prefix}.>`;
  app.get<{ Querystring: EventsQuery }>(
    '/v1/events',
    {
      schema: {
        summary: 'Follow bus events as Server-Sent Events, filtered by subject pattern, type and worker id',
        description: 'Each SSE event has `id` (the CloudEvents id) and `data` (the CloudEvents envelope as JSON: specversion, id, source, type, '
          + 'subject, time, correlationid, tenant, busSubject, data). Comments (`: keep-alive`) keep the connection open. Events are sent from the '
          + 'moment the stream opens; there is no replay.',
        querystring: EventsQuery,
        produces: ['text/event-stream'],
        response: { 200: Type.String({ description: 'Server-Sent Events stream' }), '4xx': ApiError, '5xx': ApiError },
      },
      config: { action: 'event:read', resource: () => ({ type: 'Host', id: 'events' }) },
    },
    async (req, reply) => {
      if (bus === undefined) throw hostError('HOST_ERR_BUS_UNAVAILABLE', 'this API server has no event bus to follow');
      const pattern = req.query.subject ?? everything;
      if (!subjectIsSubset(pattern, everything)) {
        throw new WorkerManagerError('WM_ERR_VALIDATION', `subject must be under '${subjects.prefix}.' (e.g. ${subjects.prefix}.worker.>)`, {
          details: { path: '/querystring/subject', prefix: subjects.prefix },
        });
      }
      const types = asList(req.query.type);
      const workers = asList(req.query.workerId);
      const tenant = callerOf(req)?.tenant;
      const wanted = (e: EventEnvelope): boolean =>
        (types === undefined || types.has(e.type))
        && (workers === undefined || (e.subject !== undefined && workers.has(e.subject)))
        && (tenant === undefined || e.tenant === undefined || e.tenant === tenant);

      const res = reply.raw;
      let started = false;
      let closed = false;
      // Before `: open` is written the stream has not started for the client, so nothing is sent. A slow client holds
      // back only its own subscription (the write waits for drain), never the publisher or other subscribers.
      const subscription = bus.subscribe(pattern, async (event) => {
        if (!started || closed || res.destroyed || !wanted(event)) return;
        if (!res.write(`id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`)) await drained(res);
      });
      try {
        await subscription.ready;
      } catch (error) {
        subscription.unsubscribe();
        throw error;
      }

      reply.hijack();
      const keepAlive = startEventStream(res, req.id);
      started = true;
      const entry = {
        end: (): void => {
          if (closed) return;
          closed = true;
          clearInterval(keepAlive);
          subscription.unsubscribe();
          streams.delete(entry);
          if (!res.writableEnded) res.end();
        },
      };
      streams.add(entry);
      res.on('close', () => entry.end());
    },
  );
}
