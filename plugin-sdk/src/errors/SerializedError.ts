import Type, { type Static, type TSchema } from 'typebox';
import { ErrorCategory, ErrorSeverity } from './categories.ts';

const SerializedErrorFields = {
  $isError: Type.Literal(true),
  code: Type.String({ minLength: 1 }),
  category: ErrorCategory,
  severity: ErrorSeverity,
  transient: Type.Boolean(),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
};

/** The data form of an error as it crosses a thread, the bus or HTTP (one level of `cause` is kept). */
export const SerializedError = Type.Object({
  ...SerializedErrorFields,
  cause: Type.Optional(Type.Object(SerializedErrorFields) as TSchema),
});

/** Plain-data error, rebuilt with `WorkerManagerError.fromJSON`. */
export interface SerializedError extends Omit<Static<typeof SerializedError>, 'cause'> {
  cause?: SerializedError;
}
