import type { FastifyInstance } from 'fastify';
import Type, { type Static } from 'typebox';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { EventBus } from '../bus/EventBus.ts';
import type { EventEnvelope } from '../bus/EventEnvelope.ts';
import { subjectIsSubset, subjectMatches, type Subjects } from '../bus/subjects.ts';
import { hostError } from '../errors.ts';
import { ApiError, EventsQuery } from './apiSchemas.ts';
import type { LogStreams } from './logRoutes.ts';
import { drained, startEventStream } from './eventStream.ts';
import { EVENT_HISTORY, RecentEvents } from './recentEvents.ts';
import { callerOf } from './routeConfig.ts';


const asList = (v: string | string[] | undefined): Set<string> | undefined => (v === undefined ? undefined : new Set(Array.isArray(v) ? v : [v]));

const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'id of the last event received; the events after it that the server still holds are sent first' })),
});
type EventsHeaders = Static<typeof EventsHeaders>;


/**
 * `GET /v1/events`: bus events as Server-Sent Events, from the moment the stream opens (the `: open` comment is sent
 * once the subscription receives events). Each event is `id: <CloudEvents id>` and `data: <envelope JSON>` with no
 * `event:` field, so an EventSource's `onmessage` gets it; the id is the bus's de-duplication id, so a client can tell
 * which events it saw. A reconnect with `Last-Event-ID` first gets the matching events published after that one, from
 * the server's recent history (each once, then the live ones); when that id is no longer held, an `event: gap` says
 * so and the stream goes on live. A caller whose principal has a tenant never receives events tagged with another
 * tenant, live or replayed.
 */
export function registerEventRoutes(app: FastifyInstance, bus: EventBus | undefined, subjects: Subjects, streams: LogStreams, history = EVENT_HISTORY): void {
  const everything = `${subjects.prefix}.>`;
  const recent = bus === undefined ? undefined : new RecentEvents(bus, everything, history);
  if (recent !== undefined) app.addHook('onClose', async () => recent.close());
  app.get<{ Querystring: EventsQuery; Headers: EventsHeaders }>(
    '/v1/events',
    {
      schema: {
        summary: 'Follow bus events as Server-Sent Events, filtered by subject pattern, type and worker id',
        description: 'Each SSE event has `id` (the CloudEvents id) and `data` (the CloudEvents envelope as JSON: specversion, id, source, type, '
          + 'subject, time, correlationid, tenant, busSubject, data). Comments (`: keep-alive`) keep the connection open. Events are sent from the '
          + `moment the stream opens. With \`Last-Event-ID\`, the matching events published after that one are sent first (the server holds at least the last ${history}); `
          + 'if it no longer holds that id, an `event: gap` (data: `{ lastEventId, message }`) comes first instead.',
        querystring: EventsQuery,
        headers: EventsHeaders,
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
      const resumeAfter = req.headers['last-event-id'];
      const send = async (event: EventEnvelope): Promise<void> => {
        if (!res.write(`id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`)) await drained(res);
      };
      let started = false;
      let closed = false;
      // Live events that arrive while a resumed stream is still replaying wait here, so none is lost or reordered.
      const waiting: EventEnvelope[] = [];
      let replayed = new Set<string>();
      // Before `: open` is written the stream has not started for the client, so a fresh stream sends nothing of that
      // moment. A slow client holds back only its own subscription (the write waits for drain), never the publisher or
      // other subscribers.
      const subscription = bus.subscribe(pattern, async (event) => {
        if (closed || res.destroyed || !wanted(event)) return;
        if (!started) {
          if (resumeAfter !== undefined) waiting.push(event);
          return;
        }
        if (!replayed.has(event.id)) await send(event);
      });
      try {
        await subscription.ready;
      } catch (error) {
        subscription.unsubscribe();
        throw error;
      }

      reply.hijack();
      const keepAlive = startEventStream(res, req.id);
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
      if (resumeAfter !== undefined) {
        const missed = recent?.after(resumeAfter);
        if (missed === undefined) {
          const message = `event ${resumeAfter} is not among the events this server still holds (the last ${history} since it started); events in between may be missing`;
          res.write(`event: gap\ndata: ${JSON.stringify({ lastEventId: resumeAfter, message })}\n\n`);
        }
        // The history and this stream's subscription see the same events in their own time: each goes out once.
        const queue = (missed ?? []).filter((e) => subjectMatches(pattern, e.busSubject) && wanted(e));
        replayed = new Set(queue.map((e) => e.id));
        for (const event of queue) if (!closed) await send(event);
        for (let next = waiting.shift(); next !== undefined && !closed; next = waiting.shift()) {
          if (!replayed.has(next.id)) await send(next);
        }
      }
      // No await between the last look at `waiting` and this: from here on the handler sends directly.
      started = true;
    },
  );
}
