import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startKeycloakDouble, type KeycloakDouble, type KeycloakFault } from '../doubles/keycloakAdmin.ts';
import { keycloakInstanceYaml, keycloakPluginYaml } from '../helpers/keycloakHostYaml.ts';
import { serveHost, type ServedHost } from '../helpers/servedHost.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';
import { grantOutcome } from '../plugins/credentials-keycloak/helpers.ts';
import { fingerprint } from '../../plugins/credentials-keycloak/src/secretNames.ts';

// A host killed while rotating a Keycloak client secret, at step `create`. Keycloak makes a regenerated secret current
// at once (capability secret.rotate.immediate), so a crash there can leave Keycloak on a secret the journal never
// heard of. The restarted engine asks Keycloak: it adopts the secret Keycloak made live and finishes the rotation
// forward, rather than rolling back (impossible: Keycloak cannot make the old secret current again) or regenerating;
// when the regeneration never reached Keycloak, there is nothing to adopt and the rotation ends rolled back with
// nothing to undo. The host runs as a real `wm serve` process; the Keycloak double runs in this test process, so it
// outlives the killed host and the next host finds Keycloak as the crash left it. The other stores' crashes:
// rotation-crash.test.ts.

const APP = 'ci-app';
const ADMIN = 'wm-rotator';
const NAME = `client-secret/${APP}`;

interface JournalEntry {
  id: string;
  operation: string;
  state: string;
  step?: string;
  finishedAt?: string;
  previousVersion?: string;
  newVersion?: string;
  error?: { code: string };
  rollbackOf?: string;
}

/** Where the crash happens: the regeneration carried out by Keycloak with its answer withheld, or held before it. */
const CASES: Array<{ title: string; fault: KeycloakFault['kind']; outcome: 'adopted' | 'rolled back' }> = [
  { title: 'Keycloak regenerated the secret, its answer never came', fault: 'apply-and-hang', outcome: 'adopted' },
  { title: 'the regeneration never reached Keycloak', fault: 'hold', outcome: 'rolled back' },
];

function config(dir: string, kc: KeycloakDouble, withPolicy: boolean): string {
  // requestTimeoutMs at its maximum: the plugin never gives up on the held request before the host is killed.
  const instance = keycloakInstanceYaml(kc, { name: 'keycloak', admin: { clientId: ADMIN, file: `${dir}/admin-secret` }, clients: [{ clientId: APP, rotate: true }], settings: { requestTimeoutMs: 300_000 } });
  return `
host: { id: crash-kc, stateDir: ${dir}/state }
secrets:
  rotation:
    defaultGracePeriodMs: 0
${withPolicy ? `    policies: [{ secret: ${NAME}, interval: 1s }]` : ''}
plugins:
${keycloakPluginYaml}instances:
${instance}`;
}

async function started(s: ServedHost): Promise<void> {
  // A host start compiles TypeScript and loads a plugin thread: 30 s and more on a loaded machine.
  await waitFor(() => s.output().includes("host 'crash-kc' started") || s.child.exitCode !== null, () => `the host to start; output:\n${s.output()}`, 120_000);
  assert.equal(s.child.exitCode, null, `host exited early:\n${s.output()}`);
}

const readJournal = async (dir: string): Promise<JournalEntry[]> =>
  (JSON.parse(await readFile(path.join(dir, 'state', 'rotation', 'journal.json'), 'utf8')) as { entries: JournalEntry[] }).entries;

const version = (secret: string): string => fingerprint('client-secret', APP, secret);

// Each case has its own folder and double, so the two run side by side (each boots two hosts one after the other).
describe('rotation on Keycloak survives a host killed in its create step', { concurrency: 2 }, () => {
  for (const c of CASES) {
    it(`SIGKILL at 'create', ${c.title}: after restart the rotation is ${c.outcome}, and Keycloak regenerated at most once`, { timeout: budget(300_000) }, async (t) => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-rotation-crash-kc-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      const kc = await startKeycloakDouble({
        clients: [{ clientId: ADMIN, realmManagementRoles: ['manage-clients'] }, { clientId: APP }],
        rotation: { expirationPeriod: 86_400, rotatedExpirationPeriod: 3_600, remainingRotationPeriod: 600 },
      });
      t.after(() => kc.close());
      await writeFile(path.join(dir, 'admin-secret'), `${kc.client(ADMIN).secret}\n`, { mode: 0o600 });
      const original = kc.client(APP).secret;
      const regenerations = (): number => kc.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/client-secret')).length;
      kc.fault({ match: /^POST .*\/client-secret$/, kind: c.fault, count: 1 });

      // First run: the one-second policy is due once the host is up; Keycloak holds the regeneration's answer.
      const first = path.join(dir, 'first.yaml');
      await writeFile(first, config(dir, kc, true));
      const host = serveHost(t, first);
      await waitFor(() => regenerations() === 1 || host.child.exitCode !== null, () => `the rotation to reach its regeneration; output:\n${host.output()}`, 120_000);
      assert.equal(host.child.exitCode, null, host.output());
      host.child.kill('SIGKILL');
      await within(host.closed, () => `the killed host to end; output:\n${host.output()}`);
      const crashed = await readJournal(dir);
      assert.deepEqual(crashed.map((e) => [e.operation, e.state, e.step]), [['rotate', 'in_progress', 'create']], 'journal written before the step');
      assert.equal(crashed[0]?.previousVersion, version(original));
      assert.equal(crashed[0]?.newVersion, undefined, 'the crash came before the answer');
      // Keycloak as the crash left it.
      if (c.outcome === 'adopted') assert.notEqual(kc.client(APP).secret, original, 'Keycloak made a new secret current');
      else assert.equal(kc.client(APP).secret, original, 'Keycloak never got the regeneration');

      // Second run: no fault, no policy.
      const second = path.join(dir, 'second.yaml');
      await writeFile(second, config(dir, kc, false));
      const again = serveHost(t, second);
      await started(again);
      const journal = await waitFor(async () => {
        const entries = await readJournal(dir);
        return entries.every((e) => e.finishedAt !== undefined) && entries;
      }, () => `every journal entry to finish; output:\n${again.output()}`, 60_000);
      const rotation = journal.find((e) => e.operation === 'rotate');
      assert.ok(rotation !== undefined);
      assert.equal(regenerations(), 1, 'no second regeneration');
      const current = kc.client(APP).secret;
      if (c.outcome === 'adopted') {
        assert.deepEqual([rotation.state, rotation.newVersion], ['completed', version(current)], JSON.stringify(journal));
        assert.equal(journal.length, 1, `no rollback: ${JSON.stringify(journal)}`);
        // Finished forward, grace 0: the old secret was invalidated in Keycloak, the adopted one works.
        assert.equal(kc.client(APP).rotated, undefined);
        assert.equal(await grantOutcome(kc, APP, original), 'invalid_client');
        assert.ok(again.output().includes('adopting it and resuming from its test'), 'the adoption is logged');
      } else {
        assert.deepEqual([rotation.state, rotation.error?.code], ['failed', 'HOST_ERR_ROTATION_INTERRUPTED'], JSON.stringify(journal));
        const rb = journal.find((e) => e.rollbackOf === rotation.id);
        assert.deepEqual([rb?.state, rb?.newVersion], ['completed', version(original)], JSON.stringify(journal));
        // Nothing was undone: Keycloak's secret is the one before, untouched.
        assert.equal(current, original);
      }
      assert.equal(await grantOutcome(kc, APP, current), 'ok');
      for (const value of [...kc.issued.secrets, ...kc.issued.tokens]) assert.ok(!again.output().includes(value) && !host.output().includes(value), 'no secret or token in the host output');

      again.child.kill('SIGTERM');
      await within(again.closed, () => `the second host to stop on SIGTERM; output:\n${again.output()}`, 60_000);
      assert.equal(again.child.exitCode, 0, `signal ${again.child.signalCode ?? 'none'}; output:\n${again.output()}`);
    });
  }
});
