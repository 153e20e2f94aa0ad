import Type, { type Static } from 'typebox';

const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

const keyFile = (what: string) => Type.Optional(Type.String({
  minLength: 1,
  description: `File holding ${what} (at least 32 bytes; one trailing newline is ignored), relative to the config file's folder. It must not be inside \`host.stateDir\`.`,
}));
const keyEnv = (what: string) => Type.Optional(Type.String({ pattern: ENV_NAME, description: `Environment variable holding ${what} (at least 32 bytes).` }));

/** Where an earlier audit key is read from: exactly one of `file` and `env`. */
export const AuditKeySource = Type.Object(
  { file: keyFile('the key'), env: keyEnv('the key') },
  { additionalProperties: false, description: 'An earlier audit key: exactly one of `file` and `env`.' },
);
/** Key source. */
export type AuditKeySource = Static<typeof AuditKeySource>;

/** The audit key: what every record's MAC and every anchored head is computed with. */
export const AuditKeySettings = Type.Object(
  {
    file: keyFile('the audit key'),
    env: keyEnv('the audit key'),
    generate: Type.Boolean({
      default: false,
      description: 'When `file` does not exist, create it (mode 0600) with a new random key and log a warning. Without `file` and `env` the host always does this, at `<stateDir>.audit-key` (beside the state dir, not in it).',
    }),
  },
  { additionalProperties: false, default: {}, description: 'The key that signs audit records (HMAC-SHA256): at most one of `file` and `env`; neither is the embedded default.' },
);

/** Where the chain head is published, and how often. */
export const AuditAnchorSettings = Type.Object(
  {
    bus: Type.Boolean({
      default: true,
      description: 'Publish the signed chain head on `audit.<bus.subjectPrefix>.head.<host id>`. With `bus.adapter: jetstream` the stream holding it (role `auditAnchor` in the streams file) denies deletes and purges, and the host reads the last head back at start; the memory bus keeps it only while the process lives.',
    }),
    file: Type.Optional(Type.String({
      minLength: 1,
      description: 'Also append each head to this file (JSON lines, written at once, fdatasynced at most once a second and at stop), relative to the config file\'s folder; it must not be inside `host.stateDir`. With `bus.adapter: memory` and no `file`, heads go to `<stateDir>.audit-anchor`, since the memory bus forgets them at exit.',
    })),
    everyRecords: Type.Integer({ minimum: 1, default: 1, description: 'Publish a head once this many records were written since the last one (1: after every write).' }),
    everyMs: Type.Integer({ minimum: 10, default: 1_000, description: 'Publish a head at the latest this long, in ms, after the first record it does not yet cover.' }),
  },
  { additionalProperties: false, default: {}, description: 'Where the audit chain\'s head (sequence number, hash, time) is published, outside the state dir.' },
);

/** The audit log's key and anchor. */
export const AuditSettings = Type.Object(
  {
    key: AuditKeySettings,
    previousKeys: Type.Array(AuditKeySource, {
      default: [],
      description: 'Earlier audit keys, after a rotation: verification and start-up need them for the records they signed; new records use `key`.',
    }),
    anchor: AuditAnchorSettings,
  },
  { additionalProperties: false, default: {}, description: 'The audit log: its signing key and the anchor of its chain (see docs/audit.md).' },
);
/** Audit settings after defaults. */
export type AuditSettings = Static<typeof AuditSettings>;
