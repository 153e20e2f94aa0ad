import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MemoryEventBus } from '../bus/MemoryEventBus.ts';
import { createLogger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugins/PluginRegistry.ts';
import type { WorkerService } from '../workers/WorkerService.ts';
import { createApiServer } from './createApiServer.ts';
import type { SecretRotation } from './SecretRotation.ts';

/** Where the checked-in copy lives. */
export const OPENAPI_FILE = fileURLToPath(new URL('../../../docs/openapi.json', import.meta.url));

/** A service no handler is called on while the document is built; touching it is a bug, so it throws. */
function unused<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get(_target, property) {
      throw new Error(`${name}.${String(property)} used while generating the OpenAPI document`);
    },
  });
}

/**
 * The OpenAPI document of a fully featured API server (bus, rotation and metrics given, so every optional route is
 * there), exactly as `GET /v1/openapi.json` serves it, as the text written to docs/openapi.json.
 */
export async function renderOpenApiDocument(): Promise<string> {
  const app = createApiServer({
    workers: unused<WorkerService>('workers'),
    registry: unused<PluginRegistry>('registry'),
    logger: createLogger({ level: 'silent', hostId: 'openapi' }),
    bus: new MemoryEventBus(),
    rotation: unused<SecretRotation>('rotation'),
    metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => '' },
  });
  try {
    const res = await app.inject({ method: 'GET', url: '/v1/openapi.json' });
    if (res.statusCode !== 200) throw new Error(`GET /v1/openapi.json answered ${res.statusCode}: ${res.body}`);
    return `${JSON.stringify(res.json(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_FILE, await renderOpenApiDocument());
}
