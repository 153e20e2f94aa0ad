/**
 * The files `wm-plugin init` writes besides package.json. Templates are plain strings joined line by line (the plugin
 * sources themselves use template literals, which would need escaping here).
 */
import type { PluginKind } from '../pluginMetadata.ts';

/** What the templates are filled with. */
export interface ScaffoldValues {
  id: string;
  kind: PluginKind;
  packageName: string;
  version: string;
  hostApi: string;
  /** The SDK's npm name. */
  sdk: string;
}

const lines = (...text: string[]): string => `${text.join('\n')}\n`;

function providerIndex(v: ScaffoldValues): string {
  return lines(
    `import { definePlugin, Type, WorkerManagerError, type Worker } from '${v.sdk}';`,
    '',
    '/**',
    ` * ${v.id}: a worker-manager provider. This scaffold keeps its workers in memory so that it passes the conformance`,
    ' * suite as generated. Replace the Map with calls to your infrastructure and keep every fact there (labels, ids),',
    ' * never only in memory: the host replaces plugin threads at any time (see "Rules the host relies on" in the plugin',
    ' * authoring guide).',
    ' */',
    'const Config = Type.Object(',
    "  { maxWorkers: Type.Integer({ minimum: 1, default: 100, description: 'workers this instance accepts at once' }) },",
    '  { additionalProperties: false },',
    ');',
    '',
    'export default definePlugin({',
    `  id: '${v.id}',`,
    `  version: '${v.version}',`,
    "  kind: 'provider',",
    `  hostApi: '${v.hostApi}',`,
    "  capabilities: { 'worker.lifecycle': '2.0.0' },",
    '  configSchema: Config,',
    '  setup(ctx) {',
    '    // The spec each worker was created with, as JSON: a repeated create with another spec is a conflict.',
    '    const workers = new Map<string, { worker: Worker; spec: string }>();',
    '    const find = (workerId: string) => {',
    '      const found = workers.get(workerId);',
    "      if (found === undefined) throw new WorkerManagerError('WM_ERR_NOT_FOUND', `no worker '${workerId}'`, { details: { workerId } });",
    '      return found;',
    '    };',
    '    return {',
    '      async createWorker({ workerId, spec }) {',
    '        const key = JSON.stringify(spec);',
    '        const existing = workers.get(workerId);',
    '        if (existing !== undefined) {',
    "          if (existing.spec !== key) throw new WorkerManagerError('WM_ERR_ALREADY_EXISTS', `worker '${workerId}' exists with another spec`, { details: { workerId } });",
    '          return existing.worker;',
    '        }',
    "        const live = [...workers.values()].filter((w) => w.worker.state.phase !== 'Terminated').length;",
    '        if (live >= ctx.config.maxWorkers) {',
    "          throw new WorkerManagerError('WM_ERR_RESOURCE_EXHAUSTED', `${live} workers already run (maxWorkers)`, { details: { workerId } });",
    '        }',
    '        // Owner labels on every worker, so listWorkers finds them again after any restart.',
    "        const worker: Worker = { workerId, state: { phase: 'Running' }, labels: { ...spec.labels, ...ctx.owner }, createdAt: new Date().toISOString() };",
    '        workers.set(workerId, { worker, spec: key });',
    '        return worker;',
    '      },',
    '      async terminateWorker({ workerId }) {',
    '        const found = workers.get(workerId);',
    "        if (found === undefined) return { workerId, state: { phase: 'Terminated' as const }, alreadyGone: true };",
    "        const alreadyGone = found.worker.state.phase === 'Terminated';",
    "        found.worker = { ...found.worker, state: { phase: 'Terminated' } };",
    '        return { workerId, state: found.worker.state, alreadyGone };',
    '      },',
    '      async getWorkerStatus({ workerId }) {',
    '        return find(workerId).worker.state;',
    '      },',
    '      async listWorkers({ labels }) {',
    '        const wanted = Object.entries(labels ?? {});',
    '        return [...workers.values()].map((w) => w.worker).filter((w) => wanted.every(([k, value]) => w.labels[k] === value));',
    '      },',
    '    };',
    '  },',
    '});',
  );
}

function credentialsIndex(v: ScaffoldValues): string {
  return lines(
    `import { definePlugin, Type, WorkerManagerError } from '${v.sdk}';`,
    "import { readSecret } from './fileStore.ts';",
    '',
    '/**',
    ` * ${v.id}: a worker-manager credential plugin. This scaffold reads secrets from a folder (one JSON file per secret,`,
    ' * see fileStore.ts) so that it passes the conformance suite as generated; replace fileStore.ts with calls to your',
    ' * secret store. Never log, label or put a value in an error.',
    ' */',
    'const Config = Type.Object(',
    "  { dir: Type.String({ minLength: 1, description: 'folder holding one JSON file per secret' }) },",
    '  { additionalProperties: false },',
    ');',
    '',
    'export default definePlugin({',
    `  id: '${v.id}',`,
    `  version: '${v.version}',`,
    "  kind: 'credentials',",
    `  hostApi: '${v.hostApi}',`,
    "  capabilities: { 'secret.read': '1.0.0' },",
    '  configSchema: Config,',
    '  setup(ctx) {',
    '    const read = async (name: string) => {',
    '      const secret = await readSecret(ctx.config.dir, name);',
    "      if (secret === undefined) throw new WorkerManagerError('WM_ERR_SECRET_NOT_FOUND', `no secret '${name}'`, { details: { name } });",
    '      return secret;',
    '    };',
    '    return {',
    '      async getSecret({ name, version }) {',
    '        const secret = await read(name);',
    '        // One version per secret: its id, or the stage `current`; `pending` and `previous` never exist here.',
    "        if (version !== undefined && version !== 'current' && version !== secret.version) {",
    "          throw new WorkerManagerError('WM_ERR_SECRET_VERSION_NOT_FOUND', `secret '${name}' has no version '${version}'`, { details: { name, version } });",
    '        }',
    '        return { name, version: secret.version, value: secret.value };',
    '      },',
    '      async listVersions({ name }) {',
    '        const secret = await read(name);',
    "        return [{ version: secret.version, status: 'active' as const, stages: ['current'], createdAt: secret.createdAt }];",
    '      },',
    '      async describe({ name }) {',
    '        const secret = await read(name);',
    '        return { name, currentVersion: secret.version, versions: 1 };',
    '      },',
    '    };',
    '  },',
    '});',
  );
}

function credentialsFileStore(v: ScaffoldValues): string {
  return lines(
    "import { createHash } from 'node:crypto';",
    "import { readFile, stat } from 'node:fs/promises';",
    "import path from 'node:path';",
    `import { writeFileAtomic, type SecretPayload } from '${v.sdk}';`,
    '',
    '/** The file of secret `name`: named after a digest, so any name (slashes, 512 characters) is one file name. */',
    'export function secretFile(dir: string, name: string): string {',
    "  return path.join(dir, `${createHash('sha256').update(name).digest('hex')}.json`);",
    '}',
    '',
    '/** Stores `value` as secret `name` (atomically: a reader sees the old or the new file, never a mix). */',
    'export async function writeSecret(dir: string, name: string, value: SecretPayload): Promise<void> {',
    '  await writeFileAtomic(secretFile(dir, name), JSON.stringify({ name, value }));',
    '}',
    '',
    '/** Secret `name` with a version id derived from its content, or undefined when there is none. */',
    'export async function readSecret(dir: string, name: string): Promise<{ value: SecretPayload; version: string; createdAt: string } | undefined> {',
    '  const file = secretFile(dir, name);',
    '  let text: string;',
    '  try {',
    "    text = await readFile(file, 'utf8');",
    '  } catch (error) {',
    "    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;",
    '    throw error;',
    '  }',
    '  const { value } = JSON.parse(text) as { value: SecretPayload };',
    "  const version = `v-${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;",
    '  return { value, version, createdAt: (await stat(file)).mtime.toISOString() };',
    '}',
  );
}

function providerTest(v: ScaffoldValues): string {
  return lines(
    "import { describe, it } from 'node:test';",
    "import { fileURLToPath } from 'node:url';",
    `import { checkPluginMetadata, createPluginHarness, runProviderConformance } from '${v.sdk}/testing';`,
    "import plugin from '../src/index.ts';",
    '',
    `describe('${v.id} provider', () => {`,
    "  it('package.json declares what definePlugin declares (else run: npm run metadata)', async () => {",
    "    await checkPluginMetadata(fileURLToPath(new URL('..', import.meta.url)), plugin);",
    '  });',
    '',
    '  runProviderConformance({',
    `    name: '${v.id}',`,
    '    capabilities: plugin.capabilities,',
    '    async setup() {',
    '      const harness = await createPluginHarness(plugin, { config: {} });',
    '      return { provider: harness.proxy, teardown: () => harness.close() };',
    '    },',
    '    // A spec with an image needs the worker.image capability; declare it once your provider runs images.',
    "    longRunningSpec: (marker) => ({ command: ['sh', '-c', `echo ${marker}; exec sleep 600`] }),",
    '  });',
    '});',
  );
}

function credentialsTest(v: ScaffoldValues): string {
  return lines(
    "import { mkdtemp, rm } from 'node:fs/promises';",
    "import os from 'node:os';",
    "import path from 'node:path';",
    "import { describe, it } from 'node:test';",
    "import { fileURLToPath } from 'node:url';",
    `import { checkPluginMetadata, createPluginHarness, runCredentialConformance, type CredentialConformanceSession } from '${v.sdk}/testing';`,
    "import { writeSecret } from '../src/fileStore.ts';",
    "import plugin from '../src/index.ts';",
    '',
    '// The folder of each session, for seed: the suite makes its secrets there, as an operator would.',
    'const folders = new WeakMap<CredentialConformanceSession, string>();',
    '',
    `describe('${v.id} credentials', () => {`,
    "  it('package.json declares what definePlugin declares (else run: npm run metadata)', async () => {",
    "    await checkPluginMetadata(fileURLToPath(new URL('..', import.meta.url)), plugin);",
    '  });',
    '',
    '  runCredentialConformance({',
    `    name: '${v.id}',`,
    '    capabilities: plugin.capabilities,',
    '    async setup() {',
    `      const dir = await mkdtemp(path.join(os.tmpdir(), '${v.id}-'));`,
    '      const harness = await createPluginHarness(plugin, { config: { dir } });',
    '      const session: CredentialConformanceSession = {',
    '        credentials: harness.proxy,',
    '        logs: () => harness.logs,',
    '        teardown: async () => {',
    '          await harness.close();',
    '          await rm(dir, { recursive: true, force: true });',
    '        },',
    '      };',
    '      folders.set(session, dir);',
    '      return session;',
    '    },',
    '    async seed(session, name, value) {',
    '      const dir = folders.get(session);',
    "      if (dir === undefined) throw new Error('seed got a session setup did not make');",
    '      await writeSecret(dir, name, value);',
    '    },',
    '  });',
    '});',
  );
}

function readme(v: ScaffoldValues): string {
  const backend = v.kind === 'provider' ? 'the in-memory worker Map in `src/index.ts`' : '`src/fileStore.ts` (a folder of JSON files)';
  return lines(
    `# ${v.packageName}`,
    '',
    `A worker-manager ${v.kind} plugin (id \`${v.id}\`), scaffolded by \`wm-plugin init\`. Replace ${backend} with calls to`,
    'your infrastructure; the conformance test tells you what the host relies on.',
    '',
    '```sh',
    'npm install',
    'npm test                 # the conformance suite, in-process, through the SDK harness',
    'npm run typecheck',
    'npm run metadata         # rewrites the package.json workerManager block from definePlugin: run it after every change',
    'npm run metadata:check   # fails, naming each difference, when the block drifted (run it in CI)',
    '```',
    '',
    'The host reads the `workerManager` block before it runs any of your code and refuses, at load, a plugin whose block',
    'differs from its `definePlugin` call (`HOST_ERR_PLUGIN_METADATA_DRIFT`). Never edit the block by hand.',
    '',
    '## Run it in a host',
    '',
    '```yaml',
    'plugins:',
    `  - name: ${v.id}`,
    `    package: "${v.packageName}"    # installed next to the host config, or a path to this folder`,
    `    version: ^${v.version}`,
    'instances:',
    `  - name: ${v.id}-1`,
    `    plugin: ${v.id}`,
    v.kind === 'provider' ? '    config: { maxWorkers: 10 }' : '    config: { dir: /var/lib/secrets }',
    '```',
  );
}

const TSCONFIG = lines(
  '{',
  '  "compilerOptions": {',
  '    "target": "ES2022",',
  '    "module": "NodeNext",',
  '    "moduleResolution": "NodeNext",',
  '    "lib": ["ES2023"],',
  '    "types": ["node"],',
  '    "strict": true,',
  '    "noUncheckedIndexedAccess": true,',
  '    "verbatimModuleSyntax": true,',
  '    "allowImportingTsExtensions": true,',
  '    "skipLibCheck": true,',
  '    "noEmit": true',
  '  },',
  '  "include": ["src", "test"]',
  '}',
);

const GITIGNORE = lines('node_modules/', 'dist/', '*.tgz', 'coverage/');

/** Every file of a new plugin but package.json, by path relative to the package. */
export function scaffoldTemplates(v: ScaffoldValues): Record<string, string> {
  const kindFiles: Record<string, string> =
    v.kind === 'provider'
      ? { 'src/index.ts': providerIndex(v), 'test/conformance.test.ts': providerTest(v) }
      : { 'src/index.ts': credentialsIndex(v), 'src/fileStore.ts': credentialsFileStore(v), 'test/conformance.test.ts': credentialsTest(v) };
  return { ...kindFiles, 'README.md': readme(v), 'tsconfig.json': TSCONFIG, '.gitignore': GITIGNORE };
}
