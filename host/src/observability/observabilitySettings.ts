import Type, { type Static } from 'typebox';

/** What the host's metrics may say. */
export const ObservabilitySettings = Type.Object(
  {
    secretNameLabels: Type.Boolean({
      default: false,
      description: 'Label the rotation metrics (`rotation_success_total`, `rotation_latency_ms`) with `secret_name`. Off (the default), they carry only the credentials instance (`provider`): whoever may scrape `/metrics` does not learn which secrets exist.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Metrics of the host (served on `/metrics`).' },
);
/** Observability settings after defaults. */
export type ObservabilitySettings = Static<typeof ObservabilitySettings>;
