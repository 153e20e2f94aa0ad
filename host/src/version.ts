import { readFileSync } from 'node:fs';

/**
 * The product's version: the host package's own, read once from its package.json so that a release bumps one place.
 * The CLI and the API's `/version` both report it.
 */
export const PRODUCT_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
