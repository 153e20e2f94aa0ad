import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runLedgerCrash } from '../helpers/ledgerCrash.ts';
import { requireDocker } from '../helpers/requireDocker.ts';
import { repoRoot } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';
import { docker, IMAGE, newHostId, removeOwned, secretsRoot } from '../plugins/docker/helpers.ts';

const skip = await requireDocker();

const INSTANCE = 'd';

// The same fault test as ledger-crash.test.ts with 50 Docker workers, the kill aimed at a container the engine made
// and the host had not started yet. Each worker has what a crash can leak: a host folder of files (a ConfigMap volume,
// written where the provider writes secret files) and, one in five, a network of its own (isolation Strict; the
// others have none, isolation Complete, so no shared instance network is made either). After the terminates no
// container, network or volume with the test's host label and no folder under the instance's files root may be left.
// The orphan cleanup runs every second here (it removes what a dead create left once it is older than
// abandonedCreateMs), so the final wait does not sit out its 60 s default.
describe('the worker ledger survives a host SIGKILLed while creating Docker workers', { skip }, () => {
  it('50 creates, SIGKILL mid-create after 20 acknowledgements, restart: ledger and engine agree, retries make 0 duplicates, terminate leaves nothing', { timeout: budget(900_000) }, async (t) => {
    const hostId = newHostId('ledger-crash');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-ledger-crash-docker-'));
    // Folders of this host's instance, as the provider names them (Names: wm-<host>-<instance>).
    const filesRoot = path.join(secretsRoot, `wm-${hostId}-${INSTANCE}`);
    t.after(async () => {
      await removeOwned(hostId);
      await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
    });
    const label = [`worker-manager/host=${hostId}`];
    const report = await runLedgerCrash(t, {
      hostId,
      dir,
      providerYaml: `
plugins:
  - name: docker
    package: ${repoRoot}plugins/docker
instances:
  - name: ${INSTANCE}
    plugin: docker
    default: true
    config:
      secretsDir: ${secretsRoot}
      configMaps: { settings: { app.conf: "mode=test" } }
      defaultGracePeriodMs: 1000
      cleanupIntervalMs: 1000
      abandonedCreateMs: 15000
`,
      spec: (i) => ({
        image: IMAGE,
        command: ['sleep', '3600'],
        labels: { suite: 'ledger-crash' },
        // The engine's default address pools hold about 30 networks, shared with every other test: one in five has one.
        network: { type: 'Private', isolation: i % 5 === 0 ? 'Strict' : 'Complete' },
        volumes: [{ mountPath: '/etc/app', source: { type: 'ConfigMap', name: 'settings' } }],
      }),
      count: 50,
      concurrency: 10,
      killAfterAcks: 20,
      // From then on, the kill is aimed at a container the engine made and the host has not started yet.
      killWhen: async () => (await docker.listContainers({ all: true, filters: { label: [...label, 'worker-manager/kind=worker'], status: ['created'] } })).length > 0,
      async infrastructure() {
        const containers = await docker.listContainers({ all: true, filters: { label: [...label, 'worker-manager/kind=worker'] } });
        const out = new Map<string, string[]>();
        for (const c of containers) {
          const id = c.Labels['worker-manager/worker-id'] ?? `(no worker id: ${c.Id.slice(0, 12)})`;
          // An ended container is no worker the engine runs; the terminates remove them, and leftovers() counts them.
          if (c.State === 'exited' || c.State === 'dead') continue;
          out.set(id, [...(out.get(id) ?? []), c.State]);
        }
        return out;
      },
      async leftovers() {
        const [containers, networks, volumes, folders] = await Promise.all([
          docker.listContainers({ all: true, filters: { label } }),
          docker.listNetworks({ filters: { label } }),
          docker.listVolumes({ filters: { label } }),
          readdir(filesRoot).catch(() => [] as string[]),
        ]);
        return [
          ...containers.map((c) => `container ${c.Names.join(',')} (${c.State})`),
          ...networks.map((n) => `network ${n.Name}`),
          ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`),
          ...folders.map((f) => `folder ${path.join(filesRoot, f)}`),
        ];
      },
      log: (line) => t.diagnostic(line),
    });
    t.diagnostic(JSON.stringify(report));
  });

});
