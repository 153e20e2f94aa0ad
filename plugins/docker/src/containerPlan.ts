import path from 'node:path';
import type Docker from 'dockerode';
import {
  argumentListTooLong,
  boundText,
  execArgumentLimit,
  specExecStrings,
  WorkerManagerError,
  type HealthCheckConfig,
  type RuntimeSpec,
  type SecretMount,
} from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import { specHash, type LabelKeys } from './labels.ts';

const MiB = 1024 * 1024;
const NS_PER_MS = 1_000_000;
/** Longest name in a path on the file systems an engine uses (NAME_MAX of ext4, xfs, overlayfs). */
const NAME_MAX = 255;

/** A file the plugin writes under the worker's secrets folder before the container starts. */
export interface PlannedFile {
  /** Path relative to the worker's secrets folder. */
  rel: string;
  content: string;
}

/** A file secret of a worker: its name, the path it was asked for, and its absolute path in the container. */
export type SecretFileEntry = [name: string, path: string, target: string];

/** Which network the worker joins. */
export type NetworkPlan = { kind: 'default' } | { kind: 'strict' } | { kind: 'none' };

/** Everything createWorker derives from a spec before it talks to the engine. */
export interface ContainerPlan {
  /** Create options without the network fields, which need the network's name first. */
  options: Docker.ContainerCreateOptions & { HostConfig: Docker.HostConfig };
  network: NetworkPlan;
  files: PlannedFile[];
  /** Named volumes (PersistentVolume claims) to make if they do not exist. */
  persistentVolumes: string[];
  gpu: number;
}

/** What {@link planContainer} needs besides the spec. */
export interface PlanInput {
  workerId: string;
  spec: RuntimeSpec;
  secrets: readonly SecretMount[];
  config: ResolvedConfig;
  keys: LabelKeys;
  owner: Record<string, string>;
  epoch: string;
  createdAt: string;
  /** Host folder for this worker's files (secrets, config maps), bind-mounted read-only. */
  filesDir: string;
}

/** Container folders a secret's folder bind must not cover: the engine mounts its own files there, or the system needs them. */
const RESERVED_FOLDERS = new Set(['/', '/etc', '/dev', '/proc', '/sys', '/bin', '/sbin', '/lib', '/lib64', '/usr', '/usr/bin', '/usr/lib', '/tmp', '/run']);

const invalid = (message: string, instancePath: string, extra: Record<string, unknown> = {}): WorkerManagerError =>
  new WorkerManagerError('WM_ERR_VALIDATION', message, { details: { instancePath, ...extra } });

/** A relative path that stays inside its base folder, or undefined. */
function containedRelative(p: string): string | undefined {
  const rel = path.posix.normalize(p.replace(/^\/+/, ''));
  if (rel === '.' || rel === '' || rel === '..' || rel.startsWith('../')) return undefined;
  return rel;
}

function healthTest(h: HealthCheckConfig): string[] {
  switch (h.type) {
    case 'http':
      return ['CMD-SHELL', `wget -q -O /dev/null http://127.0.0.1:${h.port}${h.path} || exit 1`];
    case 'tcp':
      return ['CMD-SHELL', `nc -w 1 127.0.0.1 ${h.port} </dev/null >/dev/null 2>&1 || exit 1`];
    case 'command':
      return ['CMD', ...h.command];
  }
}

/**
 * Refuses a path with a name longer than the file system takes, before the engine does: it answered a 500 quoting the
 * whole path (`lstat /var/lib/docker/overlay2/.../merged/<workingDir>: file name too long`).
 */
function checkNameLengths(p: string, instancePath: string): void {
  const longest = Math.max(0, ...p.split('/').map((name) => Buffer.byteLength(name)));
  if (longest > NAME_MAX) {
    throw invalid(`${instancePath}: a name in the path is ${longest} bytes, more than the ${NAME_MAX} a file system takes (ENAMETOOLONG)`, instancePath, {
      errorCode: 'ENAMETOOLONG',
      bytes: longest,
      limitBytes: NAME_MAX,
    });
  }
}

/**
 * Refuses a command line and environment the container's process cannot be started with (E2BIG), naming the field.
 * The engine does not check: it creates and starts the container, whose start then fails inside it (`exec ...:
 * argument list too long` in its log, exit 1). The limit is that of the engine's default 8 MiB stack; an image's own
 * environment counts too, and is not known here.
 */
function checkArgumentList(spec: RuntimeSpec, secrets: readonly SecretMount[], env: Record<string, string>): void {
  const refusal = argumentListTooLong(specExecStrings(spec, env, secrets), execArgumentLimit());
  if (refusal !== undefined) throw refusal;
}

/** True when `p` is `prefix` or below it, compared on normalised absolute paths. */
export function underPrefix(p: string, prefix: string): boolean {
  const a = path.posix.normalize(p);
  const b = path.posix.normalize(prefix).replace(/\/+$/, '');
  return b === '' || a === b || a.startsWith(`${b}/`);
}

/**
 * Turns a RuntimeSpec into container create options (seed 000, "Implementación del DockerProvider"): resources,
 * security defaults, ports, volumes, health check, environment and secret files. Refuses what cannot be honoured
 * with WM_ERR_VALIDATION (bad input) or WM_ERR_COMPATIBILITY (a feature this provider lacks). Pure: no engine calls.
 */
export function planContainer(input: PlanInput): ContainerPlan {
  const { spec, config, keys, workerId } = input;
  if (spec.image === undefined) throw invalid('spec.image is required: the docker provider runs an image', '/spec/image');
  if ((spec.network?.accessPolicies?.length ?? 0) > 0) {
    throw new WorkerManagerError('WM_ERR_COMPATIBILITY', 'the docker provider does not enforce network access policies', { details: { unsupported: ['network.accessPolicies'] } });
  }
  if (spec.workingDir !== undefined && !spec.workingDir.startsWith('/')) throw invalid('spec.workingDir must be an absolute path in the container', '/spec/workingDir');
  if (spec.workingDir !== undefined) checkNameLengths(spec.workingDir, '/spec/workingDir');

  const files: PlannedFile[] = [];
  const mounts: Docker.MountSettings[] = [];
  const persistentVolumes: string[] = [];
  const env: Record<string, string> = { ...spec.env, WM_WORKER_ID: workerId };
  const resources = spec.resources ?? {};
  let needsSecretsDir = false;

  const usedSecrets = new Set<SecretMount>();
  const secretFiles: SecretFileEntry[] = [];
  (spec.volumes ?? []).forEach((v, i) => {
    const at = `/spec/volumes/${i}`;
    if (!v.mountPath.startsWith('/')) throw invalid(`volume ${i}: mountPath must be absolute`, `${at}/mountPath`);
    checkNameLengths(v.mountPath, `${at}/mountPath`);
    const readOnly = v.readOnly === true;
    switch (v.source.type) {
      case 'EmptyDir': {
        const mib = v.source.sizeMiB ?? resources.storageMiB ?? config.emptyDirDefaultMiB;
        mounts.push({ Type: 'tmpfs', Source: '', Target: v.mountPath, ReadOnly: readOnly, TmpfsOptions: { SizeBytes: mib * MiB, Mode: 0o1777 } });
        break;
      }
      case 'HostPath': {
        const p = v.source.path;
        if (!p.startsWith('/')) throw invalid(`volume ${i}: HostPath must be absolute`, `${at}/source/path`);
        checkNameLengths(p, `${at}/source/path`);
        if (!config.allowedHostPaths.some((prefix) => underPrefix(p, prefix))) {
          throw invalid(`volume ${i}: HostPath ${boundText(p)} is not under a prefix allowed by the instance config (allowedHostPaths)`, `${at}/source/path`, {
            allowedHostPaths: config.allowedHostPaths,
          });
        }
        mounts.push({ Type: 'bind', Source: path.posix.normalize(p), Target: v.mountPath, ReadOnly: readOnly });
        break;
      }
      case 'PersistentVolume': {
        if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v.source.claimName)) throw invalid(`volume ${i}: claimName is not a valid volume name`, `${at}/source/claimName`);
        persistentVolumes.push(v.source.claimName);
        mounts.push({ Type: 'volume', Source: v.source.claimName, Target: v.mountPath, ReadOnly: readOnly });
        break;
      }
      case 'Secret': {
        const name = v.source.secretName;
        const found = input.secrets.filter((s) => s.strategy !== 'env' && s.name === name);
        if (found.length === 0) throw invalid(`volume ${i}: secret '${name}' was not resolved for this worker`, `${at}/source/secretName`);
        for (const s of found) {
          if (s.strategy === 'env') continue;
          const rel = containedRelative(s.path.startsWith(v.mountPath) ? s.path.slice(v.mountPath.length) : s.path) ?? path.posix.basename(s.name);
          files.push({ rel: `vol-${i}/${rel}`, content: s.value });
          secretFiles.push([s.name, s.path, path.posix.join(v.mountPath, rel)]);
          usedSecrets.add(s);
        }
        mounts.push({ Type: 'bind', Source: path.join(input.filesDir, `vol-${i}`), Target: v.mountPath, ReadOnly: true });
        break;
      }
      case 'ConfigMap': {
        const data = config.configMaps[v.source.name];
        if (data === undefined) throw invalid(`volume ${i}: config map '${v.source.name}' is not defined in the instance config`, `${at}/source/name`);
        for (const [file, content] of Object.entries(data)) files.push({ rel: `vol-${i}/${file}`, content });
        if (Object.keys(data).length === 0) files.push({ rel: `vol-${i}/.keep`, content: '' });
        mounts.push({ Type: 'bind', Source: path.join(input.filesDir, `vol-${i}`), Target: v.mountPath, ReadOnly: true });
        break;
      }
    }
  });

  // Absolute paths outside secretsMountPath: their FOLDER is bound (one host folder per distinct container folder,
  // nested ones folded into the outermost), never the file itself. A file bind pins the inode it was made with, so the
  // atomic rename of a refresh would stay invisible in the container; a folder bind shows it.
  const absFolders = new Map<string, string>();
  input.secrets.forEach((s, i) => {
    if (s.strategy === 'env' || usedSecrets.has(s) || !s.path.startsWith('/') || underPrefix(s.path, config.secretsMountPath)) return;
    const target = path.posix.normalize(s.path);
    const folder = path.posix.dirname(target);
    if (RESERVED_FOLDERS.has(folder) || target.endsWith('/')) {
      throw invalid(
        `secret mount '${s.name}': its folder ${folder} would be mounted over the image's (the folder is bound, so refreshes show); put the file in a folder of its own, e.g. ${folder === '/' ? '' : folder}/${s.name.replace(/[^A-Za-z0-9._-]/g, '-')}/`,
        `/secrets/${i}/path`,
        { secret: s.name, folder },
      );
    }
    absFolders.set(folder, '');
  });
  const outermost = [...absFolders.keys()].filter((f) => ![...absFolders.keys()].some((o) => o !== f && underPrefix(f, o))).sort();
  outermost.forEach((folder, k) => {
    absFolders.set(folder, `dir-${k}`);
    mounts.push({ Type: 'bind', Source: path.join(input.filesDir, `dir-${k}`), Target: folder, ReadOnly: true });
  });

  input.secrets.forEach((s, i) => {
    if (s.strategy === 'env') {
      env[s.envName] = s.value;
      return;
    }
    if (usedSecrets.has(s)) return;
    if (s.path.startsWith('/') && !underPrefix(s.path, config.secretsMountPath)) {
      const target = path.posix.normalize(s.path);
      const folder = outermost.find((f) => underPrefix(target, f))!;
      files.push({ rel: `${absFolders.get(folder)}/${path.posix.relative(folder, target)}`, content: s.value });
      secretFiles.push([s.name, s.path, target]);
      return;
    }
    const rel = containedRelative(s.path.startsWith('/') ? path.posix.relative(config.secretsMountPath, s.path) : s.path);
    if (rel === undefined) throw invalid(`secret mount '${s.name}': path must name a file`, `/secrets/${i}/path`, { secret: s.name });
    files.push({ rel: `secrets/${rel}`, content: s.value });
    secretFiles.push([s.name, s.path, path.posix.join(config.secretsMountPath, rel)]);
    needsSecretsDir = true;
  });
  if (needsSecretsDir) {
    mounts.push({ Type: 'bind', Source: path.join(input.filesDir, 'secrets'), Target: config.secretsMountPath, ReadOnly: true });
    env['WM_SECRETS_DIR'] = config.secretsMountPath;
  }
  checkArgumentList(spec, input.secrets, env);

  const exposed: Record<string, object> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of spec.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol ?? 'tcp'}`;
    exposed[key] = {};
    bindings[key] = [{ HostIp: config.publishAddress, HostPort: '' }];
  }

  const isolation = spec.network?.isolation ?? 'Default';
  const network: NetworkPlan = isolation === 'Complete' ? { kind: 'none' } : isolation === 'Strict' ? { kind: 'strict' } : { kind: 'default' };
  if (network.kind === 'none' && (spec.ports?.length ?? 0) > 0) {
    throw invalid('ports cannot be published with network isolation Complete (no network)', '/spec/ports');
  }

  const hostConfig: Docker.HostConfig = {
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    ReadonlyRootfs: spec.readOnlyRootFilesystem === true,
    Init: config.init,
    Mounts: mounts,
    PortBindings: bindings,
    RestartPolicy: { Name: 'no' },
    LogConfig: { Type: 'json-file', Config: {} },
  };
  if (config.capAdd.length > 0) hostConfig.CapAdd = config.capAdd;
  if (config.pidsLimit > 0) hostConfig.PidsLimit = config.pidsLimit;
  if (resources.cpuMillicores !== undefined) hostConfig.NanoCpus = resources.cpuMillicores * 1_000_000;
  if (resources.memoryMiB !== undefined) {
    hostConfig.Memory = resources.memoryMiB * MiB;
    // Swap equal to memory: the limit is the limit, the worker cannot page past it.
    hostConfig.MemorySwap = resources.memoryMiB * MiB;
  }
  const gpu = resources.gpu ?? 0;
  if (gpu > 0) hostConfig.DeviceRequests = [{ Driver: '', Count: gpu, DeviceIDs: [], Capabilities: [['gpu']], Options: {} }];

  const labels: Record<string, string> = {
    ...spec.labels,
    ...input.owner,
    [keys.workerId]: workerId,
    [keys.epoch]: input.epoch,
    [keys.kind]: 'worker',
    [keys.specHash]: specHash(spec),
    [keys.createdAt]: input.createdAt,
    [keys.resources]: JSON.stringify(resources),
  };
  if ((spec.ports?.length ?? 0) > 0) labels[keys.ports] = JSON.stringify(spec.ports);
  if (files.length > 0) labels[keys.secretsDir] = input.filesDir;
  if (secretFiles.length > 0) labels[keys.secretFiles] = JSON.stringify(secretFiles);
  if (spec.timeoutMs !== undefined) labels[keys.timeoutMs] = String(spec.timeoutMs);

  const options: ContainerPlan['options'] = {
    Image: spec.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ExposedPorts: exposed,
    HostConfig: hostConfig,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StopSignal: 'SIGTERM',
  };
  if (spec.command !== undefined) options.Entrypoint = spec.command;
  if (spec.args !== undefined) options.Cmd = spec.args;
  if (spec.workingDir !== undefined) options.WorkingDir = spec.workingDir;
  if (spec.user !== undefined) options.User = spec.user;
  if (spec.healthCheck !== undefined) {
    const h = spec.healthCheck;
    options.Healthcheck = {
      Test: healthTest(h),
      Interval: (h.intervalMs ?? 10_000) * NS_PER_MS,
      Timeout: (h.timeoutMs ?? 5_000) * NS_PER_MS,
      Retries: h.retries ?? 3,
      StartPeriod: (h.startPeriodMs ?? 0) * NS_PER_MS,
    };
  }
  return { options, network, files, persistentVolumes, gpu };
}
