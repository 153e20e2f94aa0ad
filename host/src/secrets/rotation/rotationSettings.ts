import Type, { type Static } from 'typebox';

/** One rotation policy: which secret, when, and how its consumers follow. */
export const RotationPolicy = Type.Object(
  {
    secret: Type.String({ minLength: 1, maxLength: 512, description: 'Name of the secret this policy rotates.' }),
    credentials: Type.Optional(Type.String({ minLength: 1, description: 'Credentials instance holding the secret; the default credentials instance when absent.' })),
    interval: Type.Optional(Type.Union([
      Type.Integer({ minimum: 1 }),
      Type.String({ pattern: '^[0-9]+(ms|s|m|h|d)$' }),
    ], { description: 'Rotate when the current version is this old: `90d`, `12h`, `30m`, `15s`, `500ms`, or milliseconds. Counted from the current version\'s creation time, so it survives host restarts. Not with `cron`.' })),
    cron: Type.Optional(Type.String({
      minLength: 9,
      description: 'Rotate on this 5-field cron schedule (minute hour day-of-month month day-of-week, local time; `*`, lists, ranges and `/steps`). A run missed while the host was down happens at the next start. Not with `interval`.',
    })),
    jitterMs: Type.Integer({ minimum: 0, default: 0, description: 'Random delay, up to this many ms, added to each time-based rotation so that secrets due together do not rotate together.' }),
    gracePeriodMs: Type.Optional(Type.Integer({ minimum: 0, description: 'How long the old version stays readable (deprecated) after the new one is active, before it is revoked; `defaultGracePeriodMs` when absent.' })),
    onEvents: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_*>-]+(\\.[A-Za-z0-9_*>-]+)*$' }), {
      description: 'Bus subject patterns (NATS wildcards `*` and `>`), e.g. `ci.security.auth.denied`: an event on any of them rotates the secret; events within `debounceMs` cause one rotation.',
    })),
    changeMode: Type.Optional(Type.Union([Type.Literal('hot'), Type.Literal('restart'), Type.Literal('signal'), Type.Literal('none')], {
      description: 'Change mode for consumers whose secret ref sets no `onRotation`: `hot`, `signal`, `restart` or `none`. Absent: `hot` for file/volume mounts, `restart` for env mounts (env mounts are always restarted unless `none`).',
    })),
  },
  { additionalProperties: false, description: 'A rotation policy for one secret.' },
);
/** Rotation policy after defaults. */
export type RotationPolicy = Static<typeof RotationPolicy>;
/** How a consumer of a rotated secret gets the new value. */
export type ChangeMode = NonNullable<RotationPolicy['changeMode']>;

/** Rotation engine settings: policies, triggers, parallelism. */
export const RotationSettings = Type.Object(
  {
    maxParallel: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Rotations running at once across all secrets; a secret never has two at once.' }),
    debounceMs: Type.Integer({
      minimum: 0,
      maximum: 3_600_000,
      default: 1_000,
      description: 'Window, in ms, in which restarts of one worker (env mounts, `restart` mode) are coalesced into one, and events triggering one policy into one rotation.',
    }),
    defaultGracePeriodMs: Type.Integer({
      minimum: 0,
      default: 300_000,
      description: 'How long, in ms, an old version stays readable after a rotation when its policy sets no `gracePeriodMs` (manual rotations of secrets without a policy too).',
    }),
    historyLimit: Type.Integer({ minimum: 10, maximum: 100_000, default: 500, description: 'Finished rotation records kept in the journal (and in `history()`); unfinished ones are always kept.' }),
    policies: Type.Array(RotationPolicy, { default: [], description: 'Rotation policies; a secret without one rotates only on request (API, CLI).' }),
  },
  { additionalProperties: false, default: {}, description: 'Secret rotation engine: policies, triggers and limits.' },
);
/** Rotation settings after defaults. */
export type RotationSettings = Static<typeof RotationSettings>;
