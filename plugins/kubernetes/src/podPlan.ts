import path from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Probe, V1ResourceRequirements, V1Secret, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { WorkerManagerError, type HealthCheckConfig, type OwnerLabels, type RuntimeSpec, type SecretMount } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';
import { CONTAINER, envKey, fileKey, secretFilePath, type Keys, type Names } from './names.ts';

/** What createWorker sends: the pod, and the Secret holding the worker's secret mounts (when it has any). */
export interface PodPlan {
  pod: V1Pod;
  secret: V1Secret | undefined;
}

export interface PlanInput {
  workerId: string;
  spec: RuntimeSpec;
  secrets: readonly SecretMount[];
  config: ResolvedConfig;
  keys: Keys;
  names: Names;
  owner: OwnerLabels;
  createdAt: string;
  correlationId: string | undefined;
  restartCount: number;
}

const invalid = (message: string, details: Record<string, unknown>): WorkerManagerError => new WorkerManagerError('WM_ERR_VALIDATION', message, { details });

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1_000));

/** The instance's owner labels plus the worker id: what selects a worker's objects. */
export function workerSelector(keys: Keys, owner: OwnerLabels, workerId?: string): Record<string, string> {
  const out: Record<string, string> = { [keys.host]: owner['worker-manager/host'], [keys.instance]: owner['worker-manager/instance'] };
  if (workerId !== undefined) out[keys.workerId] = workerId;
  return out;
}

/**
 * `spec.user` as Kubernetes takes it: numeric `uid` or `uid:gid` only (a pod cannot name a user of the image). A
 * non-zero uid also sets runAsNonRoot, so the kubelet refuses to run it as root by mistake.
 */
export function parseUser(user: string | undefined, workerId: string): { uid: number; gid: number | undefined } | undefined {
  if (user === undefined) return undefined;
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(user);
  if (m === null) throw invalid(`spec.user '${user}' is not numeric: Kubernetes takes a uid or uid:gid, not a user name`, { workerId, field: 'user' });
  return { uid: Number(m[1]), gid: m[2] === undefined ? undefined : Number(m[2]) };
}

function probe(check: HealthCheckConfig, liveness: boolean): V1Probe {
  const out: V1Probe = {
    periodSeconds: seconds(check.intervalMs ?? 10_000),
    timeoutSeconds: seconds(check.timeoutMs ?? 1_000),
    failureThreshold: Math.max(1, check.retries ?? 3),
  };
  // The start period delays only liveness: readiness may pass early, but a slow start must not be killed.
  if (liveness && check.startPeriodMs !== undefined) out.initialDelaySeconds = Math.ceil(check.startPeriodMs / 1_000);
  if (check.type === 'http') out.httpGet = { port: check.port, path: check.path };
  else if (check.type === 'tcp') out.tcpSocket = { port: check.port };
  else out.exec = { command: [...check.command] };
  return out;
}

function resources(spec: RuntimeSpec, config: ResolvedConfig): V1ResourceRequirements | undefined {
  const r = spec.resources;
  if (r === undefined) return undefined;
  // Requests equal limits: the scheduler reserves what the worker may use (Guaranteed QoS when both are set).
  const amounts: Record<string, string> = {};
  if (r.cpuMillicores !== undefined) amounts['cpu'] = `${r.cpuMillicores}m`;
  if (r.memoryMiB !== undefined) amounts['memory'] = `${r.memoryMiB}Mi`;
  if (r.storageMiB !== undefined) amounts['ephemeral-storage'] = `${r.storageMiB}Mi`;
  if ((r.gpu ?? 0) > 0) amounts[config.gpuResourceName] = String(r.gpu);
  if (Object.keys(amounts).length === 0) return undefined;
  return { requests: { ...amounts }, limits: { ...amounts } };
}

type FileMount = Exclude<SecretMount, { strategy: 'env' }>;

const underPrefix = (p: string, prefix: string): boolean => {
  const a = path.posix.normalize(p);
  const b = path.posix.normalize(prefix).replace(/\/$/, '');
  return a === b || a.startsWith(`${b}/`);
};

/**
 * The spec's volumes: EmptyDir (sizeLimit), HostPath (only under `allowedHostPaths`), PersistentVolume (an existing
 * claim of the namespace), ConfigMap (a ConfigMap of the namespace), Secret (the worker's file mounts named
 * `secretName`, as items of its Secret). Returns the secret mounts the Secret volumes took.
 */
function specVolumes(
  input: PlanInput,
  secretName: string,
  data: Record<string, string>,
): { volumes: V1Volume[]; mounts: V1VolumeMount[]; taken: Set<SecretMount> } {
  const { spec, config, workerId } = input;
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  const taken = new Set<SecretMount>();
  (spec.volumes ?? []).forEach((v, i) => {
    const name = `volume-${i}`;
    if (!v.mountPath.startsWith('/')) throw invalid(`volume ${i}: mountPath must be absolute`, { workerId, field: `volumes/${i}/mountPath` });
    const readOnly = v.readOnly === true;
    const source = v.source;
    switch (source.type) {
      case 'EmptyDir': {
        const mib = source.sizeMiB ?? spec.resources?.storageMiB;
        volumes.push({ name, emptyDir: mib === undefined ? {} : { sizeLimit: `${mib}Mi` } });
        break;
      }
      case 'HostPath':
        if (!source.path.startsWith('/') || !config.allowedHostPaths.some((prefix) => underPrefix(source.path, prefix))) {
          throw invalid(`volume ${i}: HostPath ${source.path} is not under a prefix allowed by the instance config (allowedHostPaths)`, {
            workerId,
            field: `volumes/${i}/source/path`,
            allowedHostPaths: config.allowedHostPaths,
          });
        }
        volumes.push({ name, hostPath: { path: path.posix.normalize(source.path), type: 'Directory' } });
        break;
      case 'PersistentVolume':
        volumes.push({ name, persistentVolumeClaim: { claimName: source.claimName, readOnly } });
        break;
      case 'ConfigMap':
        volumes.push({ name, configMap: { name: source.name } });
        break;
      case 'Secret': {
        const found = input.secrets.filter((s): s is FileMount => s.strategy !== 'env' && s.name === source.secretName);
        if (found.length === 0) throw invalid(`volume ${i}: secret '${source.secretName}' was not resolved for this worker`, { workerId, field: `volumes/${i}/source/secretName` });
        const items = found.map((s) => {
          const rel = s.path.startsWith(`${v.mountPath}/`) ? s.path.slice(v.mountPath.length + 1) : s.path.replace(/^\/+/, '');
          if (rel === '' || rel.split('/').includes('..')) throw invalid(`volume ${i}: secret path of '${s.name}' leaves its volume`, { workerId, secret: s.name });
          data[fileKey(s.name, s.path)] = Buffer.from(s.value).toString('base64');
          taken.add(s);
          return { key: fileKey(s.name, s.path), path: rel };
        });
        volumes.push({ name, secret: { secretName, items, defaultMode: 0o440 } });
        mounts.push({ name, mountPath: v.mountPath, readOnly: true });
        return;
      }
    }
    mounts.push({ name, mountPath: v.mountPath, readOnly: readOnly || source.type === 'ConfigMap' });
  });
  return { volumes, mounts, taken };
}

/** Secret volumes: one per folder that holds file mounts, each listing its files, so updates reach them (no subPath). */
function secretVolumes(files: ReadonlyArray<{ key: string; target: string }>, secretName: string): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const byDir = new Map<string, Array<{ key: string; path: string }>>();
  for (const f of files) {
    const dir = path.posix.dirname(f.target);
    const items = byDir.get(dir) ?? [];
    items.push({ key: f.key, path: path.posix.basename(f.target) });
    byDir.set(dir, items);
  }
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  [...byDir.entries()].forEach(([dir, items], i) => {
    const name = `secrets-${i}`;
    volumes.push({ name, secret: { secretName, items, defaultMode: 0o440 } });
    mounts.push({ name, mountPath: dir, readOnly: true });
  });
  return { volumes, mounts };
}

/** The pod (and Secret) of a worker. Names of secrets go to an annotation; their values only into the Secret. */
export function planPod(input: PlanInput): PodPlan {
  const { workerId, spec, secrets, config, keys, names } = input;
  if (spec.image === undefined) throw invalid('the kubernetes provider needs spec.image', { workerId, field: 'image' });
  const user = parseUser(spec.user, workerId);
  const secretName = names.secret(workerId);
  const data: Record<string, string> = {};
  const env: V1EnvVar[] = Object.entries(spec.env ?? {}).map(([name, value]) => ({ name, value }));
  const files: Array<{ key: string; target: string }> = [];
  const fromSpec = specVolumes(input, secretName, data);
  for (const m of secrets) {
    if (fromSpec.taken.has(m)) continue;
    if (m.strategy === 'env') {
      data[envKey(m.envName)] = Buffer.from(m.value).toString('base64');
      env.push({ name: m.envName, valueFrom: { secretKeyRef: { name: secretName, key: envKey(m.envName) } } });
    } else {
      if (m.path.split('/').includes('..')) throw invalid(`secret file path of '${m.name}' leaves its folder`, { workerId, secret: m.name });
      const target = secretFilePath(config.secretsMountPath, m.path);
      const key = fileKey(m.name, m.path);
      data[key] = Buffer.from(m.value).toString('base64');
      files.push({ key, target });
    }
  }
  const fileVolumes = secretVolumes(files, secretName);
  const volumes = [...fromSpec.volumes, ...fileVolumes.volumes];
  const mounts = [...fromSpec.mounts, ...fileVolumes.mounts];
  const selector = workerSelector(keys, input.owner, workerId);
  const annotations: Record<string, string> = {
    [keys.createdAt]: input.createdAt,
    [keys.restartCount]: String(input.restartCount),
    [keys.secrets]: JSON.stringify(secrets.map((s) => [s.name, s.version, s.strategy])),
    [keys.isolation]: spec.network?.isolation ?? 'Default',
  };
  if (input.correlationId !== undefined) annotations[keys.correlationId] = input.correlationId;
  const tenant = spec.labels?.['wm.tenant'];
  if (tenant !== undefined) annotations[keys.tenant] = tenant;

  const container: V1Container = {
    name: CONTAINER,
    image: spec.image,
    imagePullPolicy: config.imagePullPolicy,
    securityContext: {
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      readOnlyRootFilesystem: spec.readOnlyRootFilesystem === true,
      ...(user === undefined ? {} : { runAsUser: user.uid, ...(user.gid === undefined ? {} : { runAsGroup: user.gid }) }),
      ...(config.runAsNonRoot || (user !== undefined && user.uid !== 0) ? { runAsNonRoot: true } : {}),
    },
  };
  if (spec.command !== undefined) container.command = [...spec.command];
  if (spec.args !== undefined) container.args = [...spec.args];
  if (env.length > 0) container.env = env;
  if (spec.workingDir !== undefined) container.workingDir = spec.workingDir;
  const res = resources(spec, config);
  if (res !== undefined) container.resources = res;
  if (spec.healthCheck !== undefined) {
    container.readinessProbe = probe(spec.healthCheck, false);
    container.livenessProbe = probe(spec.healthCheck, true);
  }
  if (mounts.length > 0) container.volumeMounts = mounts;

  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: names.pod(workerId), labels: { ...spec.labels, ...selector }, annotations },
    spec: {
      containers: [container],
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: Math.ceil(config.defaultGracePeriodMs / 1_000),
      enableServiceLinks: false,
      securityContext: {
        seccompProfile: { type: 'RuntimeDefault' },
        ...(user === undefined ? {} : { fsGroup: user.gid ?? user.uid }),
      },
    },
  };
  const podSpec = pod.spec!;
  if (volumes.length > 0) podSpec.volumes = volumes;
  if (spec.timeoutMs !== undefined) podSpec.activeDeadlineSeconds = seconds(spec.timeoutMs);
  if (Object.keys(config.nodeSelector).length > 0) podSpec.nodeSelector = { ...config.nodeSelector };
  if (config.tolerations.length > 0) podSpec.tolerations = config.tolerations.map((t) => ({ ...t }));
  if (config.priorityClassName !== undefined) podSpec.priorityClassName = config.priorityClassName;
  if (config.serviceAccountName !== undefined) podSpec.serviceAccountName = config.serviceAccountName;
  // Workers get no API token unless the operator named a service account for them.
  else podSpec.automountServiceAccountToken = false;

  const secret: V1Secret | undefined =
    Object.keys(data).length === 0 ? undefined : { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: secretName, labels: selector }, data };
  return { pod, secret };
}
