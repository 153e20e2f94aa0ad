import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildPackage, packPackage } from '../../plugin-sdk/scripts/build-package.ts';
import { repoRoot, startTestHost, type TestHost } from '../helpers/startTestHost.ts';
import { budget } from '../helpers/waitFor.ts';

const run = promisify(execFile);
const STEP_MS = budget(300_000);
const TEST_MS = budget(900_000);
const PLUGIN = 'wm-plugin-vendor-echo';

/**
 * The environment of a vendor's shell: no tsx loader, no test-runner context inherited from this test (a `--test`
 * child that inherits NODE_TEST_CONTEXT reports in a binary protocol instead of TAP).
 */
function plainEnv(): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _options, NODE_TEST_CONTEXT: _context, ...env } = process.env;
  return env;
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function outcome(file: string, args: string[], cwd: string): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, timeout: STEP_MS, env: plainEnv(), maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: unknown; killed?: boolean; stdout?: string; stderr?: string };
    assert.equal(e.killed, false, `${file} ${args.join(' ')} did not finish within ${STEP_MS} ms`);
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}${String(error)}` };
  }
}

/**
 * Installs tarballs without the registry. `--offline` is refused here (ENOTCACHED for the semver and typebox
 * packuments, which the repository's lockfile install never needed in the `only-if-cached` form); `--prefer-offline`
 * answers from the npm cache the repository's install filled, and the short fetch timeout makes a miss fail fast.
 */
async function npmInstall(dir: string, specs: string[]): Promise<void> {
  const r = await outcome('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--fetch-retries=0', '--fetch-timeout=20000', ...specs], dir);
  assert.equal(r.code, 0, `npm install ${specs.join(' ')} in ${dir} failed:\n${r.stderr}`);
}

// A provider written the way a vendor without TypeScript would: plain ESM against the installed SDK.
const PLUGIN_SOURCE = `import { definePlugin, Type, WorkerManagerError } from '@worker-manager/plugin-sdk';

const workers = new Map();

export default definePlugin({
  id: 'vendor-echo',
  version: '1.0.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  capabilities: { 'worker.lifecycle': '2.0.0' },
  configSchema: Type.Object({ greeting: Type.String({ default: 'hello' }) }, { additionalProperties: false }),
  setup(ctx) {
    return {
      async createWorker({ workerId, spec }) {
        const key = JSON.stringify(spec);
        const found = workers.get(workerId);
        if (found !== undefined) {
          if (found.key !== key) throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', 'worker ' + workerId + ' exists with another spec');
          return found.worker;
        }
        const worker = { workerId, state: { phase: 'Running' }, labels: { ...spec.labels, ...ctx.owner, greeting: ctx.config.greeting }, createdAt: new Date().toISOString() };
        workers.set(workerId, { worker, key });
        return worker;
      },
      async terminateWorker({ workerId }) {
        const found = workers.get(workerId);
        if (found === undefined) return { workerId, state: { phase: 'Terminated' }, alreadyGone: true };
        const alreadyGone = found.worker.state.phase === 'Terminated';
        found.worker = { ...found.worker, state: { phase: 'Terminated' } };
        return { workerId, state: found.worker.state, alreadyGone };
      },
      async getWorkerStatus({ workerId }) {
        const found = workers.get(workerId);
        if (found === undefined) throw new WorkerManagerError('WM_ERR_NOT_FOUND', 'no worker ' + workerId);
        return found.worker.state;
      },
      async listWorkers({ labels }) {
        const wanted = Object.entries(labels ?? {});
        return [...workers.values()].map((w) => w.worker).filter((w) => wanted.every(([k, v]) => w.labels[k] === v));
      },
    };
  },
});
`;

// Plain node, the installed harness and conformance suite: no tsx anywhere.
const CONFORMANCE_SOURCE = `import { describe } from 'node:test';
import { createPluginHarness, runProviderConformance } from '@worker-manager/plugin-sdk/testing';
import plugin from './index.js';

describe('vendor-echo from the packed SDK', () => {
  runProviderConformance({
    name: 'vendor-echo',
    capabilities: plugin.capabilities,
    async setup() {
      const harness = await createPluginHarness(plugin, { config: {} });
      return { provider: harness.proxy, teardown: () => harness.close() };
    },
    longRunningSpec: (marker) => ({ command: ['sh', '-c', 'echo ' + marker + '; exec sleep 600'] }),
  });
});
`;

// Typed use of the public entries; resolved through the package's exports and types conditions only.
const TYPED_SOURCE = `import { definePlugin, Type, WorkerManagerError, HOST_API_VERSION, type PluginDefinition, type WorkerProviderContract, type Proxied } from '@worker-manager/plugin-sdk';
import { createPluginHarness, type PluginHarness } from '@worker-manager/plugin-sdk/testing';
import { ThreadInit } from '@worker-manager/plugin-sdk/internal';

const Config = Type.Object({ endpoint: Type.String() }, { additionalProperties: false });
const plugin: PluginDefinition<'provider', typeof Config> = definePlugin({
  id: 'typed', version: '1.0.0', kind: 'provider', hostApi: '^' + HOST_API_VERSION,
  capabilities: { 'worker.lifecycle': '2.0.0' }, configSchema: Config,
  setup(ctx) {
    const endpoint: string = ctx.config.endpoint;
    const notFound = async (): Promise<never> => { throw new WorkerManagerError('WM_ERR_NOT_FOUND', endpoint); };
    return { createWorker: notFound, terminateWorker: notFound, getWorkerStatus: notFound, listWorkers: async () => [] };
  },
});
export async function probe(): Promise<number> {
  const harness: PluginHarness<'provider'> = await createPluginHarness(plugin, { config: { endpoint: 'x' } });
  const proxy: Proxied<WorkerProviderContract> = harness.proxy;
  const listed = await proxy.listWorkers({});
  await harness.close();
  return listed.length + Object.keys(ThreadInit).length;
}
`;

// Must not compile: proves the declarations carry real types, not \`any\`.
const WRONG_SOURCE = `import { definePlugin, Type } from '@worker-manager/plugin-sdk';
export default definePlugin({
  id: 'wrong', version: '1.0.0', kind: 'runner', hostApi: '^2.0.0', capabilities: {}, configSchema: Type.Object({}),
  setup: () => ({}),
});
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2023'],
    types: ['node'],
    typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
    strict: true,
    noEmit: true,
    // The SDK's own declarations are checked too, as a consumer with default settings would.
    skipLibCheck: false,
  },
};

describe('the SDK packed by npm run sdk:pack, installed from its tarball outside the repository', { timeout: TEST_MS }, () => {
  let work: string;
  let sdkTarball: string;
  let pluginDir: string;

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'wm-sdk-package-'));
    await buildPackage();
    sdkTarball = await packPackage(path.join(work, 'packs'));
    pluginDir = path.join(work, 'vendor-echo');
    await mkdir(pluginDir);
    await writeFile(path.join(pluginDir, 'package.json'), `${JSON.stringify({ name: PLUGIN, version: '1.0.0', type: 'module', exports: { '.': './index.js' }, files: ['index.js'] }, null, 2)}\n`);
    await writeFile(path.join(pluginDir, 'index.js'), PLUGIN_SOURCE);
    await npmInstall(pluginDir, [sdkTarball]);
  }, { timeout: TEST_MS });

  after(() => rm(work, { recursive: true, force: true }));

  it('ships compiled ESM, declarations, README, CHANGELOG and the wm-plugin bin, and nothing of src/', async () => {
    const installed = path.join(pluginDir, 'node_modules', '@worker-manager', 'plugin-sdk');
    const pkg = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    const source = JSON.parse(await readFile(path.join(repoRoot, 'plugin-sdk', 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(pkg['name'], source['name']);
    assert.equal(pkg['version'], source['version']);
    assert.deepEqual(pkg['dependencies'], source['dependencies']);
    assert.deepEqual(pkg['bin'], { 'wm-plugin': './dist/cli/wmPlugin.js' });
    assert.deepEqual((pkg['exports'] as Record<string, unknown>)['.'], { types: './dist/index.d.ts', default: './dist/index.js' });
    assert.match(await readFile(path.join(installed, 'CHANGELOG.md'), 'utf8'), /Host API/);
    await readFile(path.join(installed, 'README.md'));
    await assert.rejects(readFile(path.join(installed, 'src', 'index.ts')), { code: 'ENOENT' });
  });

  it('the installed wm-plugin bin (plain node, through npm\'s .bin symlink) writes the metadata, then --check catches drift', { timeout: TEST_MS }, async () => {
    const bin = path.join(pluginDir, 'node_modules', '.bin', 'wm-plugin');
    const written = await outcome(bin, ['metadata'], pluginDir);
    assert.equal(written.code, 0, written.stderr);
    assert.match(written.stdout, /written/);
    const pkg = JSON.parse(await readFile(path.join(pluginDir, 'package.json'), 'utf8')) as { workerManager: { id: string; capabilities: Record<string, string> } };
    assert.equal(pkg.workerManager.id, 'vendor-echo');
    assert.equal((await outcome(bin, ['metadata', '--check'], pluginDir)).code, 0);

    const inSync = await readFile(path.join(pluginDir, 'package.json'), 'utf8');
    pkg.workerManager.capabilities['worker.exec'] = '1.0.0';
    await writeFile(path.join(pluginDir, 'package.json'), JSON.stringify(pkg, null, 2));
    const drifted = await outcome(bin, ['metadata', '--check'], pluginDir);
    await writeFile(path.join(pluginDir, 'package.json'), inSync);
    assert.equal(drifted.code, 1, drifted.stdout);
    assert.match(drifted.stderr, /workerManager\/capabilities\/worker\.exec: package\.json has "1\.0\.0", definePlugin has nothing/);
  });

  it('a TypeScript plugin type-checks against the installed declarations with the repository\'s tsc', { timeout: TEST_MS }, async () => {
    const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
    const typed = path.join(work, 'typed');
    await mkdir(typed, { recursive: true });
    // Next to the installed SDK, so the bare imports resolve through its node_modules.
    await writeFile(path.join(pluginDir, 'typed.ts'), TYPED_SOURCE);
    await writeFile(path.join(pluginDir, 'tsconfig.json'), JSON.stringify({ ...TSCONFIG, files: ['typed.ts'] }, null, 2));
    const ok = await outcome(tsc, ['-p', 'tsconfig.json'], pluginDir);
    assert.equal(ok.code, 0, ok.stdout);

    await writeFile(path.join(pluginDir, 'wrong.ts'), WRONG_SOURCE);
    await writeFile(path.join(pluginDir, 'tsconfig.wrong.json'), JSON.stringify({ ...TSCONFIG, files: ['wrong.ts'] }, null, 2));
    const wrong = await outcome(tsc, ['-p', 'tsconfig.wrong.json'], pluginDir);
    assert.notEqual(wrong.code, 0, 'a kind outside the union must not compile');
    assert.match(wrong.stdout, /wrong\.ts.*"runner"/);
  });

  it('plain node runs the plugin through the installed harness and passes the installed conformance suite', { timeout: TEST_MS }, async () => {
    await writeFile(path.join(pluginDir, 'conformance.test.js'), CONFORMANCE_SOURCE);
    const r = await outcome(process.execPath, ['--test', '--test-reporter=tap', 'conformance.test.js'], pluginDir);
    assert.equal(r.code, 0, r.stdout.slice(-4_000) + r.stderr);
    assert.match(r.stdout, /^# fail 0$/m);
    assert.doesNotMatch(r.stdout, /^# pass 0$/m);
  });

  /** Packs the plugin as a vendor publishes it: the SDK as a registry range, not the tarball path it was built with. */
  async function packPlugin(): Promise<string> {
    const published = JSON.parse(await readFile(path.join(pluginDir, 'package.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(pluginDir, 'package.json'), `${JSON.stringify({ ...published, dependencies: { '@worker-manager/plugin-sdk': '^0.1.0' } }, null, 2)}\n`);
    const packed = await outcome('npm', ['pack', pluginDir, '--pack-destination', path.join(work, 'packs'), '--json', '--ignore-scripts'], work);
    assert.equal(packed.code, 0, packed.stderr);
    const [tarball] = (JSON.parse(packed.stdout) as Array<{ filename: string }>).map((p) => path.join(work, 'packs', p.filename));
    assert.ok(tarball !== undefined);
    return tarball;
  }

  /** A real host whose config folder has the SDK and the plugin installed from their tarballs, as from a registry. */
  async function hostWithInstalledPlugin(isolation: 'trusted' | 'restricted'): Promise<TestHost> {
    const pluginTarball = await packPlugin();
    return startTestHost(
      `
host: { id: sdk-package-${isolation}, stateDir: \${DIR}/state }
plugins:
  - name: echo
    package: ${PLUGIN}
    version: ^1.0.0
    isolation: ${isolation}
instances:
  - { name: vendor, plugin: echo, default: true, config: { greeting: hi } }
`,
      {
        beforeStart: async (dir) => {
          await writeFile(path.join(dir, 'package.json'), '{ "name": "wm-host-config", "version": "1.0.0", "private": true }\n');
          await npmInstall(dir, [sdkTarball, pluginTarball]);
        },
      },
    );
  }

  async function assertServes(host: TestHost, isolation: string): Promise<void> {
    const row = host.report.find((r) => r.instance === 'vendor');
    assert.equal(row?.state, 'running', JSON.stringify(row?.error));
    assert.equal(row?.package, PLUGIN);
    assert.equal(row?.isolation, isolation);
    const provider = host.host.registry.provider('vendor');
    const created = await provider.createWorker({ workerId: 'from-npm', spec: { command: ['true'] } });
    assert.equal(created.state.phase, 'Running');
    assert.equal(created.labels['greeting'], 'hi');
    assert.deepEqual((await provider.listWorkers({})).map((w) => w.workerId), ['from-npm']);
  }

  it('a real host loads it by npm name from its config folder\'s node_modules (isolation: trusted) and serves calls', { timeout: TEST_MS }, async (t) => {
    const host = await hostWithInstalledPlugin('trusted');
    t.after(() => host.stop());
    await assertServes(host, 'trusted');
  });

  // Regression: the bundle guard allowed only node_modules above the plugin package, so the host SDK's own imports
  // (semver, typebox) were refused for a plugin installed outside the host's folder tree, as every vendor's is.
  it('a real host loads it by npm name under the default restricted isolation', { timeout: TEST_MS }, async (t) => {
    const host = await hostWithInstalledPlugin('restricted');
    t.after(() => host.stop());
    await assertServes(host, 'restricted');
  });
});
