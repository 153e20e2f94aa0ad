/**
 * A protocol double of Azure Resource Manager for Microsoft.ContainerInstance/containerGroups (api-version 2023-05-01)
 * and of the Microsoft identity platform's client-credentials token endpoint, served over HTTPS (a self-signed
 * certificate; clients trust {@link AzureAciDouble.ca}). Drive it through the real `@azure/arm-containerinstance`
 * client and `@azure/identity`'s ClientSecretCredential with `endpoint` and `authorityHost` set to
 * {@link AzureAciDouble.url} (and `disableInstanceDiscovery`, as for any authority MSAL does not know).
 *
 * Operations: containerGroups list by resource group, get (with instance view), createOrUpdate (201/200 with an
 * `Azure-AsyncOperation` header; the operation status resource goes InProgress -> Succeeded or Failed), delete,
 * restart / start (202 + `Azure-AsyncOperation`), stop (204), and containers' logs (`tail`, `timestamps`). Every ARM
 * request needs `api-version` and a bearer token this double issued for the subscription's tenant; errors use ARM's
 * body `{"error":{"code","message"}}`. Each container is a real Docker container (see {@link ContainerRuntime}), so
 * states, exit codes, restarts and logs are real. Faults: throttling (429 + Retry-After) and provisioning failures.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContainerRuntime, type ContainerFacts } from './azureAciContainers.ts';
import { TokenIssuer, type AzureClient } from './azureAciIdentity.ts';
import { ArmError, checkTags, groupView, type AciEvent, type GroupRecord, type Operation, type StoredContainer } from './azureAciModel.ts';
import { selfSignedCert } from './azureAciTls.ts';

export type { AzureClient } from './azureAciIdentity.ts';

/** api-versions of Microsoft.ContainerInstance the double answers. */
export const ACI_API_VERSIONS: readonly string[] = ['2023-05-01'];
/** Docker label on every container the double starts; its value is the double's id. */
export const DOUBLE_LABEL = 'wm-test/azure-aci-double';

export interface AzureAciDoubleOptions {
  subscriptionId: string;
  /** Tenant the subscription belongs to: tokens of other tenants are refused. */
  tenantId: string;
  /** Resource groups that exist in the subscription. */
  resourceGroups: string[];
  clients: AzureClient[];
  tokenTtlSeconds?: number;
  /** How long a create stays Pending before the containers are started (an image pull, a node being found). */
  provisioningDelayMs?: number;
}

/** One request the double answered. */
export interface RecordedArmCall {
  method: string;
  path: string;
  status: number;
  code?: string;
}

const GROUP_PATH = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerInstance\/containerGroups(?:\/([^/]+)(?:\/(restart|stop|start)|\/containers\/([^/]+)\/logs)?)?$/i;
const OPERATION_PATH = /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.ContainerInstance\/locations\/([^/]+)\/operations\/([^/]+)$/i;
const GROUP_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const now = (): string => new Date().toISOString();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class AzureAciDouble {
  readonly id = randomBytes(4).toString('hex');
  readonly calls: RecordedArmCall[] = [];
  readonly tokens: TokenIssuer;
  readonly runtime = new ContainerRuntime();
  readonly ca: string;
  readonly #server: Server;
  readonly #options: AzureAciDoubleOptions;
  readonly #groups = new Map<string, GroupRecord>();
  readonly #operations = new Map<string, Operation>();
  readonly #work = new Set<Promise<void>>();
  #throttle = { remaining: 0, retryAfterSeconds: 1 };
  #provisioningFailures: Array<{ code: string; message: string }> = [];
  #url = '';

  constructor(options: AzureAciDoubleOptions) {
    this.#options = options;
    this.tokens = new TokenIssuer(options.clients, options.tokenTtlSeconds ?? 3_600);
    const { cert, key } = selfSignedCert();
    this.ca = cert;
    this.#server = createServer({ cert, key }, (req, res) => {
      this.#serve(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.#send(res, req, 500, { error: { code: 'InternalServerError', message: error instanceof Error ? error.message : String(error) } });
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#url = `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** `https://127.0.0.1:<port>`: both the ARM endpoint and the authority host. */
  get url(): string {
    return this.#url;
  }

  /** `127.0.0.1:<port>`, for an instance's `egress` list. */
  get hostPort(): string {
    return new URL(this.#url).host;
  }

  /** The next `count` ARM requests are refused with 429 and `Retry-After: retryAfterSeconds`. */
  throttle(count: number, retryAfterSeconds = 1): void {
    this.#throttle = { remaining: count, retryAfterSeconds };
  }

  /** The next create's asynchronous operation ends Failed with this error, after the create was accepted. */
  failNextProvisioning(error: { code: string; message: string }): void {
    this.#provisioningFailures.push(error);
  }

  /** The Docker container of a group's container, for tests that act behind the API's back. */
  dockerIdOf(resourceGroup: string, group: string, container?: string): string | undefined {
    const rec = this.#groups.get(this.#key(resourceGroup, group));
    if (rec === undefined) return undefined;
    return container === undefined ? [...rec.dockerIds.values()][0] : rec.dockerIds.get(container);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const rec of this.#groups.values()) rec.deleted = true;
    await Promise.allSettled([...this.#work]);
    await this.runtime.removeLabelled(DOUBLE_LABEL, this.id);
  }

  #key(resourceGroup: string, name: string): string {
    return `${resourceGroup.toLowerCase()}/${name.toLowerCase()}`;
  }

  #send(res: ServerResponse, req: IncomingMessage, status: number, body: unknown, headers: Record<string, string> = {}, code?: string): void {
    this.calls.push({ method: req.method ?? '', path: new URL(req.url ?? '/', 'https://x').pathname, status, ...(code === undefined ? {} : { code }) });
    res.writeHead(status, { 'x-ms-request-id': randomUUID(), 'x-ms-correlation-request-id': randomUUID(), ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.#url);
    const method = req.method ?? 'GET';
    if (this.tokens.handle(method, url, body, res)) return;
    try {
      const answer = await this.#arm(method, url, body, req.headers.authorization);
      this.#send(res, req, answer.status, answer.body, answer.headers);
    } catch (error) {
      if (!(error instanceof ArmError)) throw error;
      this.#send(res, req, error.status, { error: { code: error.code, message: error.message } }, error.headers, error.code);
    }
  }

  async #arm(method: string, url: URL, body: string, authorization: string | undefined): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> {
    const auth = this.tokens.verify(authorization);
    if (!auth.ok) {
      throw new ArmError(401, auth.code, auth.message, { 'www-authenticate': `Bearer authorization_uri="${this.#url}/", error="invalid_token", error_description="${auth.message}"` });
    }
    const apiVersion = url.searchParams.get('api-version');
    if (apiVersion === null) throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    if (!ACI_API_VERSIONS.includes(apiVersion)) {
      throw new ArmError(400, 'NoRegisteredProviderFound', `No registered resource provider found for location and API version '${apiVersion}' and type 'containerGroups'. The supported api-versions are '${ACI_API_VERSIONS.join(', ')}'.`);
    }
    if (this.#throttle.remaining > 0) {
      this.#throttle.remaining -= 1;
      const seconds = this.#throttle.retryAfterSeconds;
      throw new ArmError(429, 'SubscriptionRequestsThrottled', `Number of requests for subscription '${this.#options.subscriptionId}' exceeded the limit. Please try again after '${seconds}' seconds.`, { 'retry-after': String(seconds) });
    }
    const op = OPERATION_PATH.exec(url.pathname);
    if (op !== null) {
      this.#checkScope(op[1]!, auth.tenantId);
      if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
      const operation = this.#operations.get(op[3]!);
      if (operation === undefined) throw new ArmError(404, 'OperationNotFound', `The operation '${op[3]!}' could not be found.`);
      return { status: 200, body: operation };
    }
    const m = GROUP_PATH.exec(url.pathname);
    if (m === null) throw new ArmError(404, 'InvalidResourceType', `The resource type could not be found in the namespace for api version '${apiVersion}'.`);
    const [, subscription, resourceGroup, name, action, container] = m;
    this.#checkScope(subscription!, auth.tenantId);
    if (!this.#options.resourceGroups.some((g) => g.toLowerCase() === resourceGroup!.toLowerCase())) {
      throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${resourceGroup!}' could not be found.`);
    }
    if (name === undefined) {
      if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
      const value = [...this.#groups.values()].filter((g) => g.resourceGroup.toLowerCase() === resourceGroup!.toLowerCase() && !g.deleted);
      return { status: 200, body: { value: await Promise.all(value.map((g) => this.#view(g, false))) } };
    }
    if (action !== undefined) return this.#action(method, resourceGroup!, name, action.toLowerCase(), apiVersion);
    if (container !== undefined) return this.#logs(method, resourceGroup!, name, container, url);
    switch (method) {
      case 'GET':
        return { status: 200, body: await this.#view(this.#require(resourceGroup!, name), true) };
      case 'PUT':
        return this.#put(resourceGroup!, name, body, apiVersion);
      case 'DELETE':
        return this.#delete(resourceGroup!, name);
      default:
        throw new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
    }
  }

  #checkScope(subscription: string, tenantId: string): void {
    if (subscription !== this.#options.subscriptionId) throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${subscription}' could not be found.`);
    if (tenantId !== this.#options.tenantId) {
      throw new ArmError(401, 'InvalidAuthenticationTokenTenant', `The access token is from the wrong issuer. It must match the tenant associated with this subscription.`);
    }
  }

  #require(resourceGroup: string, name: string): GroupRecord {
    const rec = this.#groups.get(this.#key(resourceGroup, name));
    if (rec === undefined || rec.deleted) {
      throw new ArmError(404, 'ResourceNotFound', `The Resource 'Microsoft.ContainerInstance/containerGroups/${name}' under resource group '${resourceGroup}' was not found.`);
    }
    return rec;
  }

  #resourceId(rec: GroupRecord): string {
    return `/subscriptions/${this.#options.subscriptionId}/resourceGroups/${rec.resourceGroup}/providers/Microsoft.ContainerInstance/containerGroups/${rec.name}`;
  }

  /** Starts an asynchronous operation and returns its `Azure-AsyncOperation` URL. */
  #operation(location: string, apiVersion: string): { op: Operation; url: string } {
    const op: Operation = { id: randomUUID(), status: 'InProgress', startTime: now() };
    this.#operations.set(op.id, op);
    const loc = location.toLowerCase().replace(/\s+/g, '');
    return { op, url: `${this.#url}/subscriptions/${this.#options.subscriptionId}/providers/Microsoft.ContainerInstance/locations/${loc}/operations/${op.id}?api-version=${apiVersion}` };
  }

  #background(task: Promise<void>): void {
    this.#work.add(task);
    void task.finally(() => this.#work.delete(task));
  }

  async #put(resourceGroup: string, name: string, raw: string, apiVersion: string): Promise<{ status: number; body: unknown; headers: Record<string, string> }> {
    if (!GROUP_NAME.test(name) || name.includes('--')) {
      throw new ArmError(400, 'InvalidContainerGroupName', `The container group name '${name}' is invalid. A container group name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').`);
    }
    let input: { location?: unknown; tags?: unknown; properties?: Record<string, unknown> };
    try {
      input = JSON.parse(raw) as typeof input;
    } catch {
      throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
    }
    const location = input.location;
    if (typeof location !== 'string' || location === '') throw new ArmError(400, 'LocationRequired', 'The location property is required for this definition.');
    const tags = (input.tags ?? {}) as Record<string, unknown>;
    checkTags(tags);
    const props = input.properties ?? {};
    const containers = props['containers'];
    if (!Array.isArray(containers) || containers.length === 0) throw new ArmError(400, 'NoContainersInContainerGroup', 'The container group must have at least one container.');
    for (const c of containers as StoredContainer[]) {
      if (typeof c?.name !== 'string' || !GROUP_NAME.test(c.name)) throw new ArmError(400, 'InvalidContainerName', `The container name '${String(c?.name)}' is invalid.`);
      if (typeof c.properties?.image !== 'string' || c.properties.image === '') throw new ArmError(400, 'InvalidImage', `The image of container '${c.name}' is required.`);
      const requests = c.properties.resources?.requests;
      if (typeof requests?.cpu !== 'number' || typeof requests.memoryInGB !== 'number' || requests.cpu <= 0 || requests.memoryInGB <= 0) {
        throw new ArmError(400, 'InvalidContainerResourceRequests', `The resource requests of container '${c.name}' must give a positive cpu and memoryInGB.`);
      }
    }
    if (props['osType'] !== 'Linux' && props['osType'] !== 'Windows') throw new ArmError(400, 'InvalidOsType', "The osType must be 'Linux' or 'Windows'.");
    const restartPolicy = (props['restartPolicy'] ?? 'Always') as GroupRecord['properties']['restartPolicy'];
    if (!['Always', 'OnFailure', 'Never'].includes(restartPolicy)) throw new ArmError(400, 'InvalidRestartPolicy', `The restart policy '${String(restartPolicy)}' is invalid.`);
    const { instanceView: _view, provisioningState: _state, ...writable } = props;
    const properties = { ...writable, containers: containers as StoredContainer[], osType: props['osType'] as string, restartPolicy };
    const key = this.#key(resourceGroup, name);
    const existing = this.#groups.get(key);
    const { op, url } = this.#operation(location, apiVersion);
    if (existing !== undefined && !existing.deleted) {
      existing.tags = tags as Record<string, string>;
      if (JSON.stringify(existing.properties) === JSON.stringify(properties) && existing.location === location) {
        // Nothing to change but the tags: the operation completes at once.
        op.status = 'Succeeded';
        op.endTime = now();
        return { status: 200, body: await this.#view(existing, true), headers: { 'azure-asyncoperation': url } };
      }
      existing.properties = properties;
      existing.generation += 1;
      existing.provisioningState = 'Pending';
      this.#background(this.#provision(existing, op, true));
      return { status: 200, body: await this.#view(existing, true), headers: { 'azure-asyncoperation': url } };
    }
    const rec: GroupRecord = {
      name,
      resourceGroup,
      location,
      tags: tags as Record<string, string>,
      properties,
      provisioningState: 'Pending',
      stopped: false,
      deleted: false,
      dockerIds: new Map(),
      events: new Map(),
      waiting: new Map(),
      generation: 0,
    };
    this.#groups.set(key, rec);
    this.#background(this.#provision(rec, op, false));
    return { status: 201, body: await this.#view(rec, true), headers: { 'azure-asyncoperation': url } };
  }

  #event(rec: GroupRecord, container: string, name: string, message: string, type: AciEvent['type'] = 'Normal'): void {
    const list = rec.events.get(container) ?? [];
    const t = now();
    list.push({ count: 1, firstTimestamp: t, lastTimestamp: t, name, message, type });
    rec.events.set(container, list);
  }

  async #provision(rec: GroupRecord, op: Operation, replace: boolean): Promise<void> {
    const generation = rec.generation;
    const finish = (status: 'Succeeded' | 'Failed', error?: { code: string; message: string }): void => {
      op.status = status;
      op.endTime = now();
      if (error !== undefined) op.error = error;
    };
    const stale = (): boolean => rec.deleted || rec.generation !== generation;
    if (replace) {
      for (const id of rec.dockerIds.values()) await this.runtime.remove(id);
      rec.dockerIds.clear();
      rec.events.clear();
      rec.waiting.clear();
    }
    await sleep(this.#options.provisioningDelayMs ?? 0);
    if (stale()) return finish('Failed', { code: 'Canceled', message: 'The operation was canceled.' });
    rec.provisioningState = 'Creating';
    const injected = this.#provisioningFailures.shift();
    if (injected !== undefined) {
      rec.provisioningState = 'Failed';
      return finish('Failed', injected);
    }
    for (const c of rec.properties.containers) {
      const image = c.properties.image;
      this.#event(rec, c.name, 'Pulling', `pulling image "${image}"`);
      if (!(await this.runtime.hasImage(image))) {
        const message = `Failed to pull image "${image}": the image was not found in the registry.`;
        this.#event(rec, c.name, 'Failed', message, 'Warning');
        rec.waiting.set(c.name, 'ErrImagePull');
        rec.provisioningState = 'Failed';
        return finish('Failed', { code: 'InaccessibleImage', message: `The image '${image}' in container group '${rec.name}' is not accessible. Please check the image and registry credential.` });
      }
      this.#event(rec, c.name, 'Pulled', `Successfully pulled image "${image}"`);
      if (stale()) return finish('Failed', { code: 'Canceled', message: 'The operation was canceled.' });
      const env: Record<string, string> = {};
      for (const e of c.properties.environmentVariables ?? []) env[e.name] = e.secureValue ?? e.value ?? '';
      const id = await this.runtime.run({
        name: `aci-${this.id}-${rec.name}-${c.name}-${generation}`,
        image,
        command: c.properties.command,
        env,
        cpu: c.properties.resources.requests.cpu,
        memoryInGB: c.properties.resources.requests.memoryInGB,
        restartPolicy: rec.properties.restartPolicy,
        labels: { [DOUBLE_LABEL]: this.id, 'wm-test/azure-aci-group': rec.name },
      });
      if (stale()) {
        await this.runtime.remove(id);
        return finish('Failed', { code: 'Canceled', message: 'The operation was canceled.' });
      }
      rec.dockerIds.set(c.name, id);
      this.#event(rec, c.name, 'Started', 'Started container');
    }
    rec.provisioningState = 'Succeeded';
    finish('Succeeded');
  }

  async #delete(resourceGroup: string, name: string): Promise<{ status: number; body?: unknown }> {
    const rec = this.#groups.get(this.#key(resourceGroup, name));
    if (rec === undefined || rec.deleted) return { status: 204 };
    const body = await this.#view(rec, false);
    rec.deleted = true;
    this.#groups.delete(this.#key(resourceGroup, name));
    await Promise.all([...rec.dockerIds.values()].map((id) => this.runtime.remove(id)));
    return { status: 200, body };
  }

  async #action(method: string, resourceGroup: string, name: string, action: string, apiVersion: string): Promise<{ status: number; headers?: Record<string, string> }> {
    if (method !== 'POST') throw new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
    const rec = this.#require(resourceGroup, name);
    if (rec.provisioningState !== 'Succeeded' && rec.provisioningState !== 'Failed') {
      throw new ArmError(409, 'ContainerGroupTransitioning', `The container group '${name}' is still transitioning, please retry later.`);
    }
    const ids = [...rec.dockerIds.entries()];
    if (action === 'stop') {
      rec.stopped = true;
      await Promise.all(ids.map(([c, id]) => (this.#event(rec, c, 'Killing', 'Killing container'), this.runtime.stop(id))));
      return { status: 204 };
    }
    const { op, url } = this.#operation(rec.location, apiVersion);
    this.#background(
      (async () => {
        for (const [c, id] of ids) {
          if (action === 'restart') {
            this.#event(rec, c, 'Killing', 'Killing container for restart');
            await this.runtime.restart(id);
          } else await this.runtime.start(id);
          this.#event(rec, c, 'Started', 'Started container');
        }
        rec.stopped = false;
        op.status = 'Succeeded';
        op.endTime = now();
      })().catch((error: unknown) => {
        op.status = 'Failed';
        op.endTime = now();
        op.error = { code: 'InternalServerError', message: error instanceof Error ? error.message : String(error) };
      }),
    );
    return { status: 202, headers: { 'azure-asyncoperation': url, 'retry-after': '1' } };
  }

  async #logs(method: string, resourceGroup: string, name: string, container: string, url: URL): Promise<{ status: number; body: unknown }> {
    if (method !== 'GET') throw new ArmError(405, 'MethodNotAllowed', `The requested resource does not support http method '${method}'.`);
    const rec = this.#require(resourceGroup, name);
    if (!rec.properties.containers.some((c) => c.name === container)) {
      throw new ArmError(404, 'ContainerNotFound', `The container '${container}' in container group '${name}' is not found.`);
    }
    const id = rec.dockerIds.get(container);
    const tailParam = url.searchParams.get('tail');
    const tail = tailParam === null ? undefined : Number(tailParam);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new ArmError(400, 'InvalidTailParameter', `The tail parameter '${tailParam}' is invalid.`);
    const content = id === undefined ? '' : await this.runtime.logs(id, tail, url.searchParams.get('timestamps') === 'true');
    return { status: 200, body: { content } };
  }

  /** The resource as ARM returns it, with the instance view read from Docker when asked. */
  async #view(rec: GroupRecord, instanceView: boolean): Promise<unknown> {
    const inspect = (name: string): Promise<ContainerFacts | undefined> => {
      const id = rec.dockerIds.get(name);
      return id === undefined ? Promise.resolve(undefined) : this.runtime.inspect(id);
    };
    const facts = instanceView ? await Promise.all(rec.properties.containers.map((c) => inspect(c.name))) : undefined;
    return groupView(rec, this.#resourceId(rec), facts);
  }
}

/** Starts a double on a free port of 127.0.0.1. */
export function startAzureAciDouble(options: AzureAciDoubleOptions): Promise<AzureAciDouble> {
  return new AzureAciDouble(options).listen();
}
