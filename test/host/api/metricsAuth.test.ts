import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CredentialProviderContract } from '@worker-manager/plugin-sdk';
import { repoRoot, startTestHost, type TestHost } from '../../helpers/startTestHost.ts';
import { startTestIdentityProvider, type TestIdentityProvider } from '../../helpers/testIdentityProvider.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';

// Regression: /metrics was public by default wherever the API listened, and its rotation series were labelled with
// secret names. Now it needs a token when the API binds beyond loopback (unless made public explicitly), and secret
// names are labels only with observability.secretNameLabels.

/** A secret name that says what it protects: it must not reach a scraper by default. */
const SECRET = 'prod-db-root-password';

const credentialsYaml = `
secrets:
  rotation: { defaultGracePeriodMs: 10 }
plugins:
  - name: credentials-simple
    package: ${repoRoot}plugins/credentials-simple
instances:
  - name: vault
    plugin: credentials-simple
    config: { keyFile: \${DIR}/key, scrypt: { cost: 1024 } }
`;

/** `oidc` authentication with the test identity provider, plus `extra` under `security.authentication`. */
const oidcYaml = (idp: TestIdentityProvider, extra = ''): string => `
security:
  authentication:
    mode: oidc
    oidc: { issuer: "${idp.issuer}", audience: ${idp.audience}, requiredScopes: [wm:api], allowInsecureHttp: true }
${extra}`;

async function startHost(yaml: string): Promise<TestHost> {
  return startTestHost(yaml, { beforeStart: (dir) => writeFile(path.join(dir, 'key'), 'metrics-test-key-material-0123456789\n', { mode: 0o600 }) });
}

/** The API reached over 127.0.0.1 whatever it binds: a scraper on the same machine. */
function loopbackUrl(t: TestHost): string {
  const url = new URL(t.host.apiUrl ?? assert.fail('the API is not listening'));
  return `http://127.0.0.1:${url.port}`;
}

async function scrape(t: TestHost, token?: string): Promise<{ status: number; text: string; challenge: string | null }> {
  const res = await fetch(`${loopbackUrl(t)}/metrics`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text(), challenge: res.headers.get('www-authenticate') };
}

/** Stores SECRET, rotates it once by hand and waits until the rotation is counted. */
async function rotateOnce(t: TestHost): Promise<string> {
  await t.host.registry.proxy<CredentialProviderContract>('vault', 'credentials').putSecret({ name: SECRET, value: 'v1-value-0123456789' });
  await t.host.rotation.rotate({ name: SECRET, requester: 'metrics-test' });
  return waitFor(async () => {
    const text = await t.host.metrics.render();
    return /^rotation_success_total\{.*\} 1$/m.test(text) ? text : undefined;
  }, 'the rotation to be counted', budget(60_000));
}

describe('/metrics on a non-loopback bind (0.0.0.0, scraped over 127.0.0.1)', () => {
  let idp: TestIdentityProvider;
  before(async () => {
    idp = await startTestIdentityProvider();
  });
  after(() => idp?.close());

  describe('by default', () => {
    let t: TestHost;
    before(async () => {
      t = await startHost(`host: { id: metrics-auth, stateDir: \${DIR}/state }\napi: { enabled: true, host: 0.0.0.0, port: 0 }\n${oidcYaml(idp)}${credentialsYaml}`);
    });
    after(() => t?.stop());

    it('refuses an unauthenticated scrape with 401 and a Bearer challenge', async () => {
      assert.match(t.host.apiUrl ?? '', /^http:\/\/0\.0\.0\.0:\d+$/);
      const res = await scrape(t);
      assert.equal(res.status, 401, res.text);
      assert.equal((JSON.parse(res.text) as { code: string }).code, 'WM_ERR_AUTHENTICATION');
      assert.match(res.challenge ?? '', /^Bearer /);
      assert.doesNotMatch(res.text, /process_resident_memory_bytes|plugin_up/);
    });

    it('refuses forged and expired tokens', async () => {
      const now = Math.floor(Date.now() / 1000);
      for (const token of [await idp.mint({}, { key: 'forged' }), await idp.mint({ iat: now - 900, exp: now - 300 })]) {
        assert.equal((await scrape(t, token)).status, 401);
      }
    });

    it('serves the exposition to a caller with a valid token', async () => {
      const res = await scrape(t, await idp.token('ci-operator'));
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /^plugin_up\{plugin_instance="vault",plugin="credentials-simple"\} 1$/m);
    });

    it('labels a rotation with the credentials instance, never the secret name', async () => {
      await rotateOnce(t);
      const res = await scrape(t, await idp.token('ci-operator'));
      assert.equal(res.status, 200);
      assert.match(res.text, /^rotation_success_total\{provider="vault",strategy="manual"\} 1$/m);
      assert.match(res.text, /^rotation_latency_ms_count\{provider="vault"\} 1$/m);
      assert.doesNotMatch(res.text, /secret_name/);
      assert.equal(res.text.includes(SECRET), false, 'the secret name is in /metrics');
    });
  });

  describe('made public, with secret name labels', () => {
    let t: TestHost;
    before(async () => {
      t = await startHost(
        `host: { id: metrics-public, stateDir: \${DIR}/state }\napi: { enabled: true, host: 0.0.0.0, port: 0 }\nobservability: { secretNameLabels: true }\n` +
          `${oidcYaml(idp, '    protectMetrics: false\n')}${credentialsYaml}`,
      );
    });
    after(() => t?.stop());

    it('serves /metrics without a token, while /v1 still needs one', async () => {
      assert.equal((await scrape(t)).status, 200);
      assert.equal((await fetch(`${loopbackUrl(t)}/v1/workers`)).status, 401);
    });

    it('labels a rotation with the secret name', async () => {
      await rotateOnce(t);
      const res = await scrape(t);
      assert.match(res.text, new RegExp(`^rotation_success_total\\{secret_name="${SECRET}",provider="vault",strategy="manual"\\} 1$`, 'm'));
    });
  });
});

describe('/metrics on a loopback bind (127.0.0.1)', () => {
  it('is open by default: only this machine can reach it', async () => {
    const t = await startHost('host: { id: metrics-loopback, stateDir: ${DIR}/state }\napi: { enabled: true, host: 127.0.0.1, port: 0 }\n');
    try {
      const res = await scrape(t);
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /^# TYPE rotation_success_total counter$/m);
      assert.equal((await fetch(`${loopbackUrl(t)}/v1/workers`)).status, 401);
    } finally {
      await t.stop();
    }
  });

  it('needs the admin token with protectMetrics: true', async () => {
    const t = await startHost('host: { id: metrics-loopback-closed, stateDir: ${DIR}/state }\napi: { enabled: true, port: 0 }\nsecurity: { authentication: { protectMetrics: true } }\n');
    try {
      assert.equal((await scrape(t)).status, 401);
      const token = (await readFile(t.host.adminTokenFile ?? assert.fail('no admin token'), 'utf8')).trim();
      assert.equal((await scrape(t, token)).status, 200);
    } finally {
      await t.stop();
    }
  });
});
