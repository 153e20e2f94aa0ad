import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

// The boundary rules live in eslint.config.js; this proves they reject what they should and accept what they should.
const eslint = new ESLint({ cwd: new URL('../..', import.meta.url).pathname });

async function boundaryErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'wm/stay-in-package').map((m) => m.message);
}

describe('import boundaries', () => {
  it('lets a plugin import the SDK, its testing entry, node built-ins and its own files', async () => {
    const code = "import { definePlugin } from '@worker-manager/plugin-sdk';\nimport { runProviderConformance } from '@worker-manager/plugin-sdk/testing';\nimport fs from 'node:fs';\nimport { x } from './x.ts';\nexport { definePlugin, runProviderConformance, fs, x };\n";
    assert.deepEqual(await boundaryErrors('plugins/demo/src/index.ts', code), []);
  });

  for (const spec of ['@worker-manager/host', 'typebox', 'dockerode', '../../../host/src/errors.ts', '../../docker/src/index.ts']) {
    it(`stops a plugin importing ${spec}`, async () => {
      const errors = await boundaryErrors('plugins/demo/src/index.ts', `import x from '${spec}';\nexport { x };\n`);
      assert.ok(errors.length > 0, `expected a boundary error for ${spec}`);
    });
  }

  it('lets a plugin import the npm dependencies its own package.json declares, and nothing else', async () => {
    assert.deepEqual(await boundaryErrors('plugins/docker/src/x.ts', "import Docker from 'dockerode';\nexport { Docker };\n"), []);
    assert.ok((await boundaryErrors('plugins/docker/src/x.ts', "import x from 'pino';\nexport { x };\n")).length > 0, 'an undeclared package stays refused');
    assert.ok((await boundaryErrors('plugins/docker/src/x.ts', "import x from '@worker-manager/host';\nexport { x };\n")).length > 0, 'the host stays refused');
    assert.ok((await boundaryErrors('plugins/process/src/x.ts', "import Docker from 'dockerode';\nexport { Docker };\n")).length > 0, 'a dependency of one plugin is not allowed in another');
  });

  it('lets a plugin import its own files from a nested folder', async () => {
    assert.deepEqual(await boundaryErrors('plugins/demo/src/deep/x.ts', "import { y } from '../y.ts';\nexport { y };\n"), []);
  });

  it('applies the plugin rule to fixture plugins too', async () => {
    assert.ok((await boundaryErrors('test/fixtures/plugins/echo/index.ts', "import x from 'pino';\nexport { x };\n")).length > 0);
  });

  it('lets the fault-injecting fixture import the one plugin it wraps, and nothing else', async () => {
    const file = 'test/fixtures/plugins/credentials-simple-faulty/index.ts';
    assert.deepEqual(await boundaryErrors(file, "import simple from '@worker-manager/plugin-credentials-simple';\nexport { simple };\n"), []);
    assert.ok((await boundaryErrors(file, "import x from '@worker-manager/plugin-process';\nexport { x };\n")).length > 0, 'another plugin stays refused');
    assert.ok((await boundaryErrors('test/fixtures/plugins/echo/index.ts', "import x from '@worker-manager/plugin-credentials-simple';\nexport { x };\n")).length > 0, 'other fixtures stay bound');
  });

  it('stops plugin-sdk importing the host', async () => {
    assert.ok((await boundaryErrors('plugin-sdk/src/x.ts', "import x from '@worker-manager/host';\nexport { x };\n")).length > 0);
    assert.ok((await boundaryErrors('plugin-sdk/src/x.ts', "import x from '../../host/src/errors.ts';\nexport { x };\n")).length > 0);
    assert.deepEqual(await boundaryErrors('plugin-sdk/src/x.ts', "import x from 'typebox';\nexport { x };\n"), []);
  });

  it('keeps infrastructure clients and plugin code out of the host', async () => {
    assert.ok((await boundaryErrors('host/src/workers/x.ts', "import x from 'dockerode';\nexport { x };\n")).length > 0);
    assert.ok((await boundaryErrors('host/src/workers/x.ts', "import x from '@worker-manager/plugin-process';\nexport { x };\n")).length > 0);
    assert.deepEqual(await boundaryErrors('host/src/workers/x.ts', "import x from '@worker-manager/plugin-sdk';\nexport { x };\n"), []);
  });
});
