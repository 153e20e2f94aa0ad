import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startKeycloakDouble } from '../doubles/keycloakAdmin.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../helpers/keycloakHostYaml.ts';
import { grantOutcome } from '../plugins/credentials-keycloak/helpers.ts';
import { describeRotationLoad } from './rotationLoadScenario.ts';

// Issue 16: the rotation-under-load scenario (rotationLoadScenario.ts) against credentials-keycloak, the real plugin
// and openid-client talking to the Keycloak double (token endpoint and admin REST API, the secret-rotation executor
// on). The secret rotated is the client secret `client-secret/ci-load`: each rotation regenerates it through the admin
// API (live at once, capability secret.rotate.immediate), tests it with a client credentials grant, moves the readers
// onto it, and after the grace period invalidates the rotated one.
//
// Why the client secret and not the service-account token: the scenario drives 100 rotations through the engine, one
// every 100 ms, and checks their records, the chain of versions and each old version's grace period. A token has no
// rotation (createPendingVersion is WM_ERR_COMPATIBILITY: it is replaced by expiring); it is renewed by LeaseRenewals at
// two thirds of its lease, never sooner than a second apart and without a record, so 100 renewals would take minutes and
// leave nothing for those checks to hold on to. Token renewal in running workers is lease-renewal.test.ts.
//
// Keycloak keeps one rotated secret: a rotation made while the one before is still in its grace period drops the
// secret before that (the documented caveat). The readers here read a file and never authenticate, so the scenario's
// assertions hold as for every store; what Keycloak itself holds at the end is checked in `verify`.

const APP = 'ci-load';
const ADMIN = 'wm-rotator';

await describeRotationLoad({
  title: 'credentials-keycloak against the Keycloak double',
  tag: 'rotkc',
  instance: 'keycloak',
  async setup(t) {
    const kc = await startKeycloakDouble({
      clients: [{ clientId: ADMIN, realmManagementRoles: ['manage-clients'] }, { clientId: APP }],
      rotation: { expirationPeriod: 86_400, rotatedExpirationPeriod: 3_600, remainingRotationPeriod: 600 },
    });
    t.after(() => kc.close());
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-rotload-keycloak-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // The admin client's secret from a file, as docs/credentials-keycloak.md asks: never in the YAML.
    const adminFile = path.join(dir, 'admin-secret');
    await writeFile(adminFile, `${kc.client(ADMIN).secret}\n`, { mode: 0o600 });
    const regenerations = (): number => kc.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/client-secret')).length;
    return {
      pluginYaml: keycloakPluginYaml.trimEnd(),
      instanceYaml: keycloakInstanceYaml(kc, { name: 'keycloak', admin: { clientId: ADMIN, file: adminFile }, clients: [{ clientId: APP, rotate: true }] }).trimEnd(),
      secret: {
        name: `client-secret/${APP}`,
        async first(creds) {
          const got = await creds.getSecret({ name: `client-secret/${APP}` });
          assert.equal(got.value, kc.client(APP).secret, 'the plugin serves the secret Keycloak holds');
          return { version: got.version, value: got.value as string };
        },
      },
      async verify(chain) {
        // What Keycloak itself holds: one regeneration per rotation (none retried, none repeated), the newest secret
        // current, no rotated secret left (the last grace period ended with its invalidation), and at its token
        // endpoint only the newest secret is accepted.
        assert.equal(regenerations(), chain.length - 1, 'one regeneration per rotation');
        const secrets = kc.issued.secrets.filter((s) => s !== kc.client(ADMIN).secret);
        assert.equal(secrets.length, chain.length, 'Keycloak made one secret per version of the chain');
        assert.equal(kc.client(APP).secret, secrets.at(-1));
        assert.equal(kc.client(APP).rotated, undefined, 'no rotated secret left');
        const outcomes = await Promise.all(secrets.map((s) => grantOutcome(kc, APP, s)));
        assert.deepEqual(outcomes.map((o, i) => (i === secrets.length - 1 ? o === 'ok' : o === 'invalid_client')).filter((ok) => !ok), [], JSON.stringify(outcomes));
      },
    };
  },
});
