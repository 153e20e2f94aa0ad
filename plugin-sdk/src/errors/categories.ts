import Type, { type Static } from 'typebox';

/** Error categories. They decide retry policy and HTTP status. */
export const ErrorCategory = Type.Union([
  Type.Literal('ClientValidation'),
  Type.Literal('Authorization'),
  Type.Literal('TransientInfrastructure'),
  Type.Literal('PermanentInfrastructure'),
  Type.Literal('Configuration'),
  Type.Literal('ResourceLimits'),
  Type.Literal('Internal'),
]);
/** One of the seven error categories. */
export type ErrorCategory = Static<typeof ErrorCategory>;

/** How urgently an operator should look at an error. */
export const ErrorSeverity = Type.Union([
  Type.Literal('Critical'),
  Type.Literal('High'),
  Type.Literal('Medium'),
  Type.Literal('Low'),
]);
/** One of the four severities. */
export type ErrorSeverity = Static<typeof ErrorSeverity>;

/** What the catalog knows about one stable error code. */
export interface ErrorCodeSpec {
  readonly category: ErrorCategory;
  readonly severity: ErrorSeverity;
  /** True when retrying later, with backoff, may succeed. */
  readonly transient: boolean;
  /** One line: what happened. */
  readonly description: string;
  /** One line: what the caller or operator should do. */
  readonly howToSolve: string;
}
