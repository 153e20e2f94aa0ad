import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SDK_ERROR_CODES } from '@worker-manager/plugin-sdk';
import { renderErrorCatalog } from '../../host/src/errorCatalogMarkdown.ts';
import { HOST_ERROR_CODES } from '../../host/src/errors.ts';

describe('docs/errors.md', () => {
  it('is current with both error catalogs (run npm run docs:errors after changing a code)', async () => {
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    assert.equal(doc, renderErrorCatalog());
  });

  it('documents every exported code exactly once', async () => {
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of [...Object.keys(SDK_ERROR_CODES), ...Object.keys(HOST_ERROR_CODES)]) {
      assert.equal(doc.split(`| \`${code}\` |`).length - 1, 1, `${code} must have exactly one row`);
    }
  });

  it('keeps the two families apart by prefix', () => {
    for (const code of Object.keys(SDK_ERROR_CODES)) assert.match(code, /^WM_ERR_[A-Z_]+$/);
    for (const code of Object.keys(HOST_ERROR_CODES)) assert.match(code, /^HOST_ERR_[A-Z_]+$/);
  });
});
