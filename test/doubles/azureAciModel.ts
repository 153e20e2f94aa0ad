import type { ContainerFacts } from './azureAciContainers.ts';

// The double's state of container groups and operations, and how ARM shows them (resource bodies, instance views).

export type Provisioning = 'Pending' | 'Creating' | 'Succeeded' | 'Failed';

export interface AciEvent {
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  name: string;
  message: string;
  type: 'Normal' | 'Warning';
}

export interface StoredContainer {
  name: string;
  properties: {
    image: string;
    command?: string[];
    environmentVariables?: Array<{ name: string; value?: string; secureValue?: string }>;
    resources: { requests: { cpu: number; memoryInGB: number } };
    [key: string]: unknown;
  };
}

export interface GroupRecord {
  name: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  properties: { containers: StoredContainer[]; osType: string; restartPolicy: 'Always' | 'OnFailure' | 'Never'; [key: string]: unknown };
  provisioningState: Provisioning;
  stopped: boolean;
  deleted: boolean;
  /** Docker container id per ACI container name. */
  dockerIds: Map<string, string>;
  events: Map<string, AciEvent[]>;
  /** Why provisioning failed, per container (shown as its Waiting state). */
  waiting: Map<string, string>;
  generation: number;
}

export interface Operation {
  id: string;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  startTime: string;
  endTime?: string;
  error?: { code: string; message: string };
}

/** An ARM error answer: status, `{"error":{"code","message"}}` body, extra headers. */
export class ArmError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const FORBIDDEN_TAG_CHARS = /[<>%&\\?/]/;

/** ARM's tag rules: at most 50, names up to 512 characters without `< > % & \ ? /`, values up to 256. */
export function checkTags(tags: Record<string, unknown>): void {
  const entries = Object.entries(tags);
  if (entries.length > 50) throw new ArmError(400, 'InvalidTemplate', `The number of tags (${entries.length}) exceeds the maximum of 50 per resource.`);
  for (const [name, value] of entries) {
    if (FORBIDDEN_TAG_CHARS.test(name)) throw new ArmError(400, 'InvalidTagNameCharacters', `The tag names '${name}' have reserved characters '<,>,%,&,\\,?,/' or control characters.`);
    if (name.length > 512) throw new ArmError(400, 'InvalidTagNameLength', `The tag name '${name.slice(0, 40)}...' exceeds the maximum length of 512.`);
    if (typeof value !== 'string' || value.length > 256) throw new ArmError(400, 'InvalidTagValueLength', `The value of tag '${name}' must be a string of at most 256 characters.`);
  }
}

/**
 * The resource as ARM returns it: with `facts` (one per container, from Docker) it carries the instance views, as a
 * GET does; without, it is a listing's entry. Secure environment values are never returned.
 */
export function groupView(rec: GroupRecord, resourceId: string, facts: Array<ContainerFacts | undefined> | undefined): unknown {
  const containers = rec.properties.containers.map((c, i) => {
    const env = (c.properties.environmentVariables ?? []).map((e) => (e.secureValue !== undefined ? { name: e.name } : { name: e.name, value: e.value }));
    return {
      name: c.name,
      properties: { ...c.properties, environmentVariables: env, ...(facts === undefined ? {} : { instanceView: containerView(rec, c.name, facts[i]) }) },
    };
  });
  return {
    id: resourceId,
    name: rec.name,
    type: 'Microsoft.ContainerInstance/containerGroups',
    location: rec.location,
    tags: rec.tags,
    properties: {
      sku: 'Standard',
      ...rec.properties,
      containers,
      provisioningState: rec.provisioningState,
      ...(facts === undefined ? {} : { instanceView: { events: [], state: groupState(rec, facts) } }),
    },
  };
}

function containerView(rec: GroupRecord, name: string, facts: ContainerFacts | undefined): unknown {
  const events = rec.events.get(name) ?? [];
  const restartCount = facts?.restartCount ?? 0;
  if (facts === undefined) {
    const detail = rec.waiting.get(name) ?? (rec.provisioningState === 'Failed' ? 'ProvisioningFailed' : 'ContainerCreating');
    return { restartCount, currentState: { state: 'Waiting', detailStatus: detail }, events };
  }
  if (facts.running) return { restartCount, currentState: { state: 'Running', startTime: facts.startedAt, detailStatus: '' }, events };
  if (facts.status === 'created' || facts.status === 'restarting') return { restartCount, currentState: { state: 'Waiting', detailStatus: facts.status === 'created' ? 'ContainerCreating' : 'CrashLoopBackOff' }, events };
  const detailStatus = facts.oomKilled ? 'OOMKilled' : facts.exitCode === 0 ? 'Completed' : 'Error';
  return { restartCount, currentState: { state: 'Terminated', exitCode: facts.exitCode, startTime: facts.startedAt, finishTime: facts.finishedAt, detailStatus }, events };
}

function groupState(rec: GroupRecord, states: Array<ContainerFacts | undefined>): string {
  if (rec.stopped) return 'Stopped';
  if (rec.provisioningState === 'Failed') return 'Failed';
  if (rec.provisioningState !== 'Succeeded') return 'Pending';
  if (states.some((s) => s?.running === true)) return 'Running';
  if (states.some((s) => s === undefined || s.status === 'created' || s.status === 'restarting')) return 'Pending';
  return states.some((s) => s!.exitCode !== 0) ? 'Failed' : 'Succeeded';
}
