import { readFile } from 'node:fs/promises';
import { text as readStream } from 'node:stream/consumers';
import { parse as parseYaml } from 'yaml';
import { CreateWorkerBody } from '../../api/apiSchemas.ts';
import { checkerFor } from '../client/checkerFor.ts';
import { keyValues, usageError } from './apiCommand.ts';

/** The flags of `wm workers create` that shape the request. */
export interface CreateFlags {
  file?: string;
  image?: string;
  cmd?: string;
  env?: string[];
  label?: string[];
  provider?: string;
  workerId?: string;
  cpu?: string;
  memory?: string;
  timeout?: number;
}

/** `--cpu`: cores (`0.5`, `2`) or millicores (`500m`), as millicores. */
export function parseCpu(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(value.trim());
  const millicores = m === null ? Number.NaN : m[2] === 'm' ? Number(m[1]) : Number(m[1]) * 1000;
  if (!Number.isInteger(millicores) || millicores < 1) throw usageError(`--cpu takes cores (0.5, 2) or millicores (500m), got '${value}'`, { path: '--cpu' });
  return millicores;
}

/** `--memory`: MiB (`512`, `512Mi`) or GiB (`1Gi`, `1.5G`), as MiB. */
export function parseMemory(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(Mi|M|Gi|G)?$/.exec(value.trim());
  const mib = m === null ? Number.NaN : m[2]?.startsWith('G') === true ? Number(m[1]) * 1024 : Number(m[1]);
  if (!Number.isInteger(mib) || mib < 1) throw usageError(`--memory takes MiB (512, 512Mi) or GiB (1Gi), got '${value}'`, { path: '--memory' });
  return mib;
}

/** A spec file (JSON or YAML; `-` is stdin): a whole create body (it has `spec`) or a bare RuntimeSpec. */
async function readSpecFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = file === '-' ? await readStream(process.stdin) : await readFile(file, 'utf8');
  } catch (error) {
    throw usageError(`cannot read the spec file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { path: '--file' });
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw usageError(`${file} is neither JSON nor YAML: ${(error as Error).message}`, { path: '--file' });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw usageError(`${file} must hold an object (a RuntimeSpec, or { spec, provider?, labels? })`, { path: '--file' });
  const record = data as Record<string, unknown>;
  return 'spec' in record ? { ...record } : { spec: record };
}

/**
 * The body of `POST /v1/workers` from a spec file and flags; flags win over the file (env and labels are merged
 * key by key). Checked against the API's own schema, so a mistake is a usage error (exit 2) naming its path, before
 * anything is sent.
 */
export async function createWorkerBody(flags: CreateFlags, command: readonly string[]): Promise<CreateWorkerBody> {
  const body: Record<string, unknown> = flags.file === undefined ? { spec: {} } : await readSpecFile(flags.file);
  const spec: Record<string, unknown> = typeof body['spec'] === 'object' && body['spec'] !== null ? { ...(body['spec'] as Record<string, unknown>) } : {};
  if (flags.image !== undefined) spec['image'] = flags.image;
  if (flags.cmd !== undefined) {
    spec['command'] = [flags.cmd];
    if (command.length > 0) spec['args'] = [...command];
  } else if (command.length > 0) {
    const [program, ...args] = command;
    spec['command'] = [program];
    if (args.length > 0) spec['args'] = args;
    else delete spec['args'];
  }
  const env = keyValues(flags.env, '--env');
  if (env !== undefined) spec['env'] = { ...(spec['env'] as Record<string, string> | undefined), ...env };
  const resources: Record<string, unknown> = { ...(spec['resources'] as Record<string, unknown> | undefined) };
  if (flags.cpu !== undefined) resources['cpuMillicores'] = parseCpu(flags.cpu);
  if (flags.memory !== undefined) resources['memoryMiB'] = parseMemory(flags.memory);
  if (Object.keys(resources).length > 0) spec['resources'] = resources;
  if (flags.timeout !== undefined) spec['timeoutMs'] = flags.timeout;
  body['spec'] = spec;
  const labels = keyValues(flags.label, '--label');
  if (labels !== undefined) body['labels'] = { ...(body['labels'] as Record<string, string> | undefined), ...labels };
  if (flags.provider !== undefined) body['provider'] = flags.provider;
  if (flags.workerId !== undefined) body['workerId'] = flags.workerId;
  const checkBody = checkerFor(CreateWorkerBody);
  if (!checkBody.Check(body)) {
    const issues = [...checkBody.Errors(body)].slice(0, 10).map((e) => ({ path: e.instancePath === '' ? '/' : e.instancePath, message: e.message }));
    const first = issues[0] ?? { path: '/', message: 'invalid' };
    throw usageError(`the worker request is invalid: ${first.path}: ${first.message}`, { path: first.path, issues });
  }
  return body;
}
