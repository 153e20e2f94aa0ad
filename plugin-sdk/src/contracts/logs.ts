import Type, { type Static } from 'typebox';
import { Timestamp } from './common.ts';

/** One chunk of a worker's output. `data` is UTF-8 text; `seq` orders chunks and lets a reader resume. */
export const LogChunk = Type.Object(
  {
    stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
    data: Type.String(),
    timestamp: Timestamp,
    seq: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
/** Log chunk. */
export type LogChunk = Static<typeof LogChunk>;

/** Options of getLogs. With `follow`, the stream stays open until the worker ends or the reader cancels. */
export const LogOptions = Type.Object(
  {
    follow: Type.Optional(Type.Boolean()),
    tailLines: Type.Optional(Type.Integer({ minimum: 0 })),
    sinceSeq: Type.Optional(Type.Integer({ minimum: 0 })),
    stdout: Type.Optional(Type.Boolean()),
    stderr: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/** Log options. */
export type LogOptions = Static<typeof LogOptions>;

/** What getLogs returns across the boundary: a handle for the stream of {@link LogChunk}s. */
export const LogStreamRef = Type.Object({ streamId: Type.String({ minLength: 1 }) }, { additionalProperties: false });
/** Log stream handle. */
export type LogStreamRef = Static<typeof LogStreamRef>;
