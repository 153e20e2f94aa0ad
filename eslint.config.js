// @ts-check
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

// A relative import must stay inside the package that contains the importing file; a regex cannot know where a
// package ends, so this resolves the path. Package roots: plugins/<id>/ and test/fixtures/plugins/<id>/.
const stayInPackage = {
  meta: { type: 'problem', schema: [], messages: { escape: "'{{spec}}' leaves the plugin package {{root}}; import @worker-manager/plugin-sdk instead." } },
  create(context) {
    const file = context.filename;
    // Match on the path below the project root, so a checkout that itself lives under a 'plugins' folder still works.
    const match = /^((?:test\/fixtures\/)?plugins\/[^/]+)\//.exec(path.relative(context.cwd, file));
    if (match === null) return {};
    const root = path.join(context.cwd, match[1]);
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), spec);
      if (target !== root && !target.startsWith(`${root}/`)) context.report({ node, messageId: 'escape', data: { spec, root: path.basename(root) } });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};

// Plugins may import only the SDK, Node built-ins, their own files and the npm dependencies their own package.json
// declares (a Docker provider needs dockerode); this is what lets a vendor ship a plugin built against plugin-sdk
// alone, and what lets the host change without breaking plugins. Other @worker-manager packages are never allowed.
const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pluginBoundary = (deps = []) => ({
  'no-restricted-imports': ['error', {
    patterns: [
      {
        regex: `^(?!@worker-manager/plugin-sdk(/testing)?$|node:|\\.{1,2}/${deps.map((d) => `|${escapeRegex(d)}(/|$)`).join('')})`,
        message: `Plugins import only @worker-manager/plugin-sdk, node: built-ins and the dependencies in their own package.json${deps.length > 0 ? ` (${deps.join(', ')})` : ''}.`,
      },
    ],
  }],
});

/** One config block per plugin package that declares third-party dependencies, allowing exactly those. */
function pluginDependencyBlocks() {
  const root = fileURLToPath(new URL('.', import.meta.url));
  const blocks = [];
  for (const parent of ['plugins', 'test/fixtures/plugins']) {
    let dirs = [];
    try {
      dirs = readdirSync(path.join(root, parent), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      continue;
    }
    for (const dir of dirs) {
      let deps = [];
      try {
        const pkg = JSON.parse(readFileSync(path.join(root, parent, dir, 'package.json'), 'utf8'));
        deps = Object.keys(pkg.dependencies ?? {}).filter((d) => !d.startsWith('@worker-manager/'));
      } catch {
        continue;
      }
      if (deps.length > 0) blocks.push({ files: [`${parent}/${dir}/**/*.ts`], rules: pluginBoundary(deps) });
    }
  }
  return blocks;
}

// The SDK is published on its own and must never depend on the host.
const sdkBoundary = {
  'no-restricted-imports': ['error', {
    patterns: [
      { regex: '^@worker-manager/(host|plugin-)', message: 'plugin-sdk must not import the host or plugins.' },
      { regex: '(^|/)(host|plugins)/', message: 'plugin-sdk must not import the host or plugins by path.' },
    ],
  }],
};

// Host core talks to infrastructure only through ports; clients live in plugins or in bus adapters (STYLE 7).
const hostBoundary = {
  'no-restricted-imports': ['error', {
    patterns: [
      { regex: '^(dockerode|@kubernetes/client-node|node-vault|@aws-sdk/)', message: 'Infrastructure clients belong in plugins, not in the host.' },
      { regex: '^@worker-manager/plugin-(?!sdk)', message: 'The host loads plugins through the registry, never by import.' },
      { regex: '(^|/)plugins/[a-z-]+/src/', message: 'The host loads plugins through the registry, never by import.' },
    ],
  }],
};

export default tseslint.config(
  // plugin-sdk/dist-package/ is the publishable SDK that `npm run sdk:pack` compiles: generated JavaScript and .d.ts.
  { ignores: ['**/node_modules/**', '.wm-state/**', '.tools/**', 'dist/**', 'coverage/**', 'plugin-sdk/dist-package/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['plugins/**/*.ts', 'test/fixtures/plugins/**/*.ts'],
    plugins: { wm: { rules: { 'stay-in-package': stayInPackage } } },
    rules: { ...pluginBoundary(), 'wm/stay-in-package': 'error' },
  },
  ...pluginDependencyBlocks(),
  // A fixture that injects faults around a real plugin imports that plugin, and only that one: credentials-simple-faulty
  // wraps the embedded credential store, so rotation failures are tested on the store that ships.
  { files: ['test/fixtures/plugins/credentials-simple-faulty/**/*.ts'], rules: pluginBoundary(['@worker-manager/plugin-credentials-simple']) },
  { files: ['plugin-sdk/**/*.ts'], rules: sdkBoundary },
  // Adapters are where a port meets its infrastructure client (the bus's NATS, authorization's Verified Permissions).
  { files: ['host/**/*.ts'], ignores: ['host/src/bus/adapters/**', 'host/src/security/authz/adapters/**'], rules: hostBoundary },
);
