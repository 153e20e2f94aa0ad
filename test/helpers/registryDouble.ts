/**
 * A protocol double of a Docker Registry (HTTP API V2, the "distribution" spec) for tests: a plain-HTTP server on
 * 127.0.0.1 that the Docker daemon pulls from for real (the daemon treats 127.0.0.0/8 registries as insecure, so plain
 * HTTP is allowed). It speaks the endpoints a pull uses:
 *
 * - `GET /v2/`: version check, `Docker-Distribution-API-Version: registry/2.0`;
 * - `HEAD`/`GET /v2/<name>/manifests/<tag or digest>`: an image manifest (schema 2,
 *   `application/vnd.docker.distribution.manifest.v2+json`, or OCI `application/vnd.oci.image.manifest.v1+json`),
 *   with `Docker-Content-Digest`;
 * - `HEAD`/`GET /v2/<name>/blobs/<digest>`: the config and the gzipped layers;
 * - errors as the spec's JSON body `{"errors":[{code, message, detail}]}`: `NAME_UNKNOWN`, `MANIFEST_UNKNOWN`,
 *   `BLOB_UNKNOWN`, `UNAUTHORIZED` (401 with a `WWW-Authenticate: Basic` challenge when the double requires basic
 *   auth), `UNSUPPORTED`.
 *
 * Images come from one the engine already holds (`docker save` through the engine API): its config and layers are
 * served with their sha256 digests; the config gets a label of its own so that every served image has a new image id.
 * The double can hold manifest requests until the test releases them, so a test sees a pull in flight.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import type Docker from 'dockerode';

export const DOCKER_MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_MANIFEST_V1 = 'application/vnd.oci.image.manifest.v1+json';

/** A served image: its manifest (as bytes, so its digest is stable) and its blobs by digest. */
interface ServedImage {
  manifest: Buffer;
  mediaType: string;
  digest: string;
  blobs: Map<string, Buffer>;
}

/** One request the double received (method, path, and whether it carried valid credentials). */
export interface RegistryRequest {
  method: string;
  path: string;
  authorized: boolean;
}

/** A running double. */
export interface RegistryDouble {
  /** `127.0.0.1:<port>`: the registry part of an image reference. */
  readonly host: string;
  /** Every request so far, in order. */
  readonly requests: readonly RegistryRequest[];
  /**
   * Serves the image the engine holds as `source` under `<host>/<repository>:<tag>`; returns that reference.
   * `mediaType` picks the manifest format (Docker schema 2 by default, or OCI).
   */
  serve(source: string, repository: string, tag: string, mediaType?: string): Promise<string>;
  /** Manifest requests wait from now on until {@link release}. */
  hold(): void;
  /** Answers the held manifest requests and stops holding. */
  release(): void;
  /** Manifest requests received so far (held or answered), for `repository` when given. */
  manifestRequests(repository?: string): number;
  close(): Promise<void>;
}

export interface RegistryDoubleOptions {
  /** Require HTTP basic auth with these credentials on every `/v2/` request. */
  basicAuth?: { username: string; password: string };
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Regular files of a tar archive by name (ustar/GNU headers; the `docker save` format has no long names). */
export function readTar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number): string => header.subarray(start, start + length).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    const prefix = field(345, 155);
    const name = prefix === '' ? field(0, 100) : `${prefix}/${field(0, 100)}`;
    const type = field(156, 1);
    const body = at + 512;
    if (type === '' || type === '0') files.set(name, tar.subarray(body, body + size));
    at = body + Math.ceil(size / 512) * 512;
  }
  return files;
}

function errorBody(code: string, message: string, detail: unknown = null): string {
  return JSON.stringify({ errors: [{ code, message, detail }] });
}

async function imageTar(docker: Docker, source: string): Promise<Buffer> {
  const stream = await docker.getImage(source).get();
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Starts a registry double on 127.0.0.1 (a free port). `docker` is used only to export the images it serves. */
export async function startRegistryDouble(docker: Docker, options: RegistryDoubleOptions = {}): Promise<RegistryDouble> {
  const images = new Map<string, Map<string, ServedImage>>();
  const requests: RegistryRequest[] = [];
  const held: Array<() => void> = [];
  let holding = false;
  const sockets = new Set<Socket>();
  const expectedAuth =
    options.basicAuth === undefined ? undefined : `Basic ${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString('base64')}`;

  const send = (res: ServerResponse, status: number, headers: Record<string, string | number>, body: Buffer | string | undefined, head: boolean): void => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    res.writeHead(status, { 'Docker-Distribution-API-Version': 'registry/2.0', ...(data === undefined ? {} : { 'Content-Length': data.length }), ...headers });
    res.end(head ? undefined : data);
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string, head: boolean, extra: Record<string, string> = {}): void =>
    send(res, status, { 'Content-Type': 'application/json; charset=utf-8', ...extra }, errorBody(code, message), head);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    const url = new URL(req.url ?? '/', 'http://registry');
    const authorized = expectedAuth === undefined || req.headers.authorization === expectedAuth;
    requests.push({ method, path: url.pathname, authorized });
    if (!url.pathname.startsWith('/v2/')) return fail(res, 404, 'NOT_FOUND', 'not a registry API path', head);
    if (!authorized) {
      return fail(res, 401, 'UNAUTHORIZED', 'authentication required', head, { 'WWW-Authenticate': 'Basic realm="registry-double"' });
    }
    if (url.pathname === '/v2/') return send(res, 200, { 'Content-Type': 'application/json; charset=utf-8' }, '{}', head);
    if (method !== 'GET' && method !== 'HEAD') return fail(res, 405, 'UNSUPPORTED', 'the operation is unsupported', head);
    const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (match === null) return fail(res, 404, 'NOT_FOUND', 'unknown path', head);
    const [, name = '', kind, reference = ''] = match;
    const repo = images.get(name);
    if (kind === 'manifests') {
      if (holding) await new Promise<void>((resolve) => held.push(resolve));
      if (repo === undefined) return fail(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry', head);
      const image = reference.startsWith('sha256:') ? [...repo.values()].find((i) => i.digest === reference) : repo.get(reference);
      if (image === undefined) return fail(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown', head);
      return send(res, 200, { 'Content-Type': image.mediaType, 'Docker-Content-Digest': image.digest, ETag: `"${image.digest}"` }, image.manifest, head);
    }
    if (repo === undefined) return fail(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry', head);
    const blob = [...repo.values()].map((i) => i.blobs.get(reference)).find((b) => b !== undefined);
    if (blob === undefined) return fail(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry', head);
    return send(res, 200, { 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': reference }, blob, head);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) fail(res, 500, 'UNKNOWN', error instanceof Error ? error.message : String(error), false);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The daemon tries HTTPS first on an insecure registry; a TLS hello is not HTTP, so close it and it falls back.
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    host,
    requests,
    async serve(source, repository, tag, mediaType = DOCKER_MANIFEST_V2) {
      const files = readTar(await imageTar(docker, source));
      const saved = JSON.parse(files.get('manifest.json')?.toString('utf8') ?? '[]') as Array<{ Config: string; Layers: string[] }>;
      const entry = saved[0];
      if (entry === undefined) throw new Error(`docker save of ${source} has no manifest.json entry`);
      const config = JSON.parse(files.get(entry.Config)?.toString('utf8') ?? 'null') as { config?: { Labels?: Record<string, string> | null } } | null;
      if (config === null) throw new Error(`docker save of ${source} has no config ${entry.Config}`);
      // A label of its own: a new image id, so the pulled image is this one and not the source under another name.
      config.config = { ...config.config, Labels: { ...config.config?.Labels, 'wm-test/registry-double': randomBytes(6).toString('hex') } };
      const configBytes = Buffer.from(JSON.stringify(config));
      const oci = mediaType === OCI_MANIFEST_V1;
      const blobs = new Map<string, Buffer>([[sha256(configBytes), configBytes]]);
      const layers = entry.Layers.map((name) => {
        const tar = files.get(name);
        if (tar === undefined) throw new Error(`docker save of ${source} has no layer ${name}`);
        const gz = gzipSync(tar);
        blobs.set(sha256(gz), gz);
        return { mediaType: oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: sha256(gz) };
      });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType,
          config: { mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', size: configBytes.length, digest: sha256(configBytes) },
          layers,
        }),
      );
      let repo = images.get(repository);
      if (repo === undefined) images.set(repository, (repo = new Map()));
      repo.set(tag, { manifest, mediaType, digest: sha256(manifest), blobs });
      return `${host}/${repository}:${tag}`;
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const resolve of held.splice(0)) resolve();
    },
    manifestRequests(repository) {
      return requests.filter((r) => r.path.includes('/manifests/') && (repository === undefined || r.path.startsWith(`/v2/${repository}/manifests/`))).length;
    },
    async close() {
      holding = false;
      for (const resolve of held.splice(0)) resolve();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
