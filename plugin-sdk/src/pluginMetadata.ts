import Type, { type Static } from 'typebox';

/** Plugin kinds: providers run workers, credential plugins hold secrets. */
export const PluginKind = Type.Union([Type.Literal('provider'), Type.Literal('credentials')]);
/** Plugin kind. */
export type PluginKind = Static<typeof PluginKind>;

/**
 * The `workerManager` block of a plugin's package.json. The host reads it (and the package `version`) to negotiate
 * before any plugin code runs; `wm-plugin metadata` (in this repo `npm run plugin:metadata`) writes it from the plugin's
 * `definePlugin` call so the two never drift, and the host refuses a plugin whose two declarations differ.
 */
export const PluginMetadata = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z][a-z0-9-]{0,62}$' }),
    kind: PluginKind,
    hostApi: Type.String({ minLength: 1, description: 'semver range of host API versions the plugin works with' }),
    capabilities: Type.Record(Type.String({ pattern: '^[a-z][a-zA-Z0-9.]*$' }), Type.String({ minLength: 1 })),
    configSchema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the instance config' }),
    description: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
/** The package.json `workerManager` block. */
export type PluginMetadata = Static<typeof PluginMetadata>;
