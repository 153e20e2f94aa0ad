import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import type Docker from 'dockerode';
import { bytes, milliCpu } from './quantity.ts';

/** What a container's Docker configuration depends on besides the pod: resolved by the pod worker. */
export interface ContainerContext {
  nodeName: string;
  /** The apiserver the agent serves (see {@link CLUSTER_LABEL}). */
  cluster: string;
  sandboxId: string;
  hostNetwork: boolean;
  podIP: string;
  hostIP: string;
  attempt: number;
  /** Host folder of each pod volume, by volume name. */
  volumePaths: Map<string, string>;
  /** Volume names the kubelet always mounts read-only (Secret, ConfigMap, projected, downward API). */
  readOnlyVolumes: Set<string>;
  /** Host file bound at the container's terminationMessagePath. */
  terminationLogPath: string;
  /** Reads one key of a Secret or ConfigMap in the pod's namespace; undefined when the object or key is absent. */
  readKey(kind: 'Secret' | 'ConfigMap', name: string, key: string): Promise<string | undefined>;
  /** Reads all keys of a Secret or ConfigMap; undefined when the object is absent. */
  readAll(kind: 'Secret' | 'ConfigMap', name: string): Promise<Record<string, string> | undefined>;
}

/** A configuration the kubelet refuses before starting the container (`CreateContainerConfigError`). */
export class ContainerConfigError extends Error {}

/** Labels on every Docker container the agent creates, so `stop()` and orphan cleanup find exactly its own. */
export const AGENT_LABEL = 'wm.test.kube-node';

/**
 * The apiserver URL of the agent that made a container. Agents of several clusters share one Docker engine (a test
 * that restarts an apiserver runs a cluster of its own beside the shared one), and a Node exists only in its own
 * cluster: orphan cleanup asks its apiserver about its cluster's containers alone.
 */
export const CLUSTER_LABEL = 'wm.test.kube-cluster';

/** Docker's name for a pod container, as dockershim named them: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>. */
export function dockerName(pod: V1Pod, container: string, attempt: number): string {
  const meta = pod.metadata ?? {};
  return `k8s_${container}_${meta.name ?? ''}_${meta.namespace ?? ''}_${meta.uid ?? ''}_${attempt}`;
}

export function podLabels(pod: V1Pod, node: { nodeName: string; cluster: string }, container: string): Record<string, string> {
  return {
    [AGENT_LABEL]: node.nodeName,
    [CLUSTER_LABEL]: node.cluster,
    'io.kubernetes.pod.name': pod.metadata?.name ?? '',
    'io.kubernetes.pod.namespace': pod.metadata?.namespace ?? '',
    'io.kubernetes.pod.uid': pod.metadata?.uid ?? '',
    'io.kubernetes.container.name': container,
  };
}

/** The Docker create options for one container of a pod, as dockershim built them. */
export async function containerConfig(pod: V1Pod, container: V1Container, context: ContainerContext): Promise<Docker.ContainerCreateOptions> {
  const env = await resolveEnv(pod, container, context);
  const expand = (value: string): string => expandVars(value, env);
  const security = securityConfig(pod, container);
  const limits = container.resources?.limits ?? {};
  const requests = container.resources?.requests ?? {};
  const hostConfig: Docker.HostConfig = {
    NetworkMode: context.hostNetwork ? 'host' : `container:${context.sandboxId}`,
    Binds: binds(container, context),
    // Docker's own restart policy stays off: restarts (and their back-off) are the kubelet's decision.
    RestartPolicy: { Name: 'no' },
    ...security.host,
  };
  if (limits['memory'] !== undefined) {
    hostConfig.Memory = bytes(limits['memory']);
    hostConfig.MemorySwap = hostConfig.Memory;
  }
  if (limits['cpu'] !== undefined) {
    // The kubelet's CFS quota: period 100 ms, quota = millicores * period / 1000, at least 1 ms.
    hostConfig.CpuPeriod = 100_000;
    hostConfig.CpuQuota = Math.max(1000, Math.floor((milliCpu(limits['cpu']) * 100_000) / 1000));
  }
  const requestCpu = requests['cpu'] ?? limits['cpu'];
  // cpu.shares = millicores * 1024 / 1000, at least 2 (MilliCPUToShares).
  hostConfig.CpuShares = requestCpu === undefined ? 2 : Math.max(2, Math.floor((milliCpu(requestCpu) * 1024) / 1000));
  const options: Docker.ContainerCreateOptions = {
    name: dockerName(pod, container.name, context.attempt),
    Image: container.image ?? '',
    Env: [...env].map(([name, value]) => `${name}=${value}`),
    Labels: podLabels(pod, context, container.name),
    Tty: container.tty === true,
    OpenStdin: container.stdin === true,
    StdinOnce: container.stdinOnce === true,
    AttachStdin: false,
    HostConfig: hostConfig,
    ...security.container,
  };
  if (container.workingDir !== undefined && container.workingDir !== '') options.WorkingDir = container.workingDir;
  // `command` replaces the image's ENTRYPOINT (and so drops its CMD), `args` replaces CMD: Docker's own semantics.
  if (container.command !== undefined && container.command.length > 0) {
    options.Entrypoint = container.command.map(expand);
    options.Cmd = (container.args ?? []).map(expand);
  } else if (container.args !== undefined && container.args.length > 0) {
    options.Cmd = container.args.map(expand);
  }
  return options;
}

function binds(container: V1Container, context: ContainerContext): string[] {
  const out: string[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const hostPath = context.volumePaths.get(mount.name);
    if (hostPath === undefined) throw new ContainerConfigError(`volume "${mount.name}" not found in the pod`);
    const source = mount.subPath !== undefined && mount.subPath !== '' ? `${hostPath}/${mount.subPath}` : hostPath;
    const readOnly = mount.readOnly === true || context.readOnlyVolumes.has(mount.name);
    out.push(`${source}:${mount.mountPath}${readOnly ? ':ro' : ''}`);
  }
  const terminationPath = container.terminationMessagePath ?? '/dev/termination-log';
  if (terminationPath !== '') out.push(`${context.terminationLogPath}:${terminationPath}`);
  return out;
}

interface SecurityConfig {
  container: Partial<Docker.ContainerCreateOptions>;
  host: Partial<Docker.HostConfig>;
}

/** The parts of the pod and container securityContext that Docker can honour. */
function securityConfig(pod: V1Pod, container: V1Container): SecurityConfig {
  const podContext = pod.spec?.securityContext ?? {};
  const context = container.securityContext ?? {};
  const user = context.runAsUser ?? podContext.runAsUser;
  const group = context.runAsGroup ?? podContext.runAsGroup;
  const runAsNonRoot = context.runAsNonRoot ?? podContext.runAsNonRoot;
  if (runAsNonRoot === true && (user === undefined || user === 0)) {
    // The kubelet checks the image's USER; every image here runs as root unless the pod says otherwise.
    throw new ContainerConfigError(
      user === 0 ? 'container\'s runAsUser breaks non-root policy' : 'container has runAsNonRoot and image will run as root',
    );
  }
  const result: SecurityConfig = { container: {}, host: {} };
  if (user !== undefined) result.container.User = group === undefined ? `${user}` : `${user}:${group}`;
  else if (group !== undefined) result.container.User = `0:${group}`;
  const groups = [...(podContext.supplementalGroups ?? []), ...(podContext.fsGroup === undefined ? [] : [podContext.fsGroup])];
  if (groups.length > 0) result.host.GroupAdd = groups.map(String);
  if (context.privileged === true) result.host.Privileged = true;
  if (context.readOnlyRootFilesystem === true) result.host.ReadonlyRootfs = true;
  if (context.capabilities?.add !== undefined) result.host.CapAdd = context.capabilities.add;
  if (context.capabilities?.drop !== undefined) result.host.CapDrop = context.capabilities.drop;
  if (context.allowPrivilegeEscalation === false) result.host.SecurityOpt = ['no-new-privileges'];
  const sysctls = podContext.sysctls ?? [];
  if (sysctls.length > 0) result.host.Sysctls = Object.fromEntries(sysctls.map((s) => [s.name, s.value]));
  return result;
}

/** The container's environment in the kubelet's order: service variables, then envFrom, then env (last wins). */
async function resolveEnv(pod: V1Pod, container: V1Container, context: ContainerContext): Promise<Map<string, string>> {
  const env = new Map<string, string>();
  // The kubelet always adds the `kubernetes` Service of the default namespace (the apiserver), whatever
  // enableServiceLinks says; other Services' variables are not emulated (there is no Service proxy here).
  for (const [name, value] of Object.entries({
    KUBERNETES_SERVICE_HOST: '10.0.0.1',
    KUBERNETES_SERVICE_PORT: '443',
    KUBERNETES_SERVICE_PORT_HTTPS: '443',
    KUBERNETES_PORT: 'tcp://10.0.0.1:443',
    KUBERNETES_PORT_443_TCP: 'tcp://10.0.0.1:443',
    KUBERNETES_PORT_443_TCP_PROTO: 'tcp',
    KUBERNETES_PORT_443_TCP_PORT: '443',
    KUBERNETES_PORT_443_TCP_ADDR: '10.0.0.1',
  })) {
    env.set(name, value);
  }
  for (const source of container.envFrom ?? []) {
    const ref = source.secretRef ?? source.configMapRef;
    if (ref === undefined) continue;
    const kind = source.secretRef !== undefined ? 'Secret' : 'ConfigMap';
    const values = await context.readAll(kind, ref.name ?? '');
    if (values === undefined) {
      if (ref.optional === true) continue;
      throw new ContainerConfigError(`${kind.toLowerCase()} "${ref.name ?? ''}" not found`);
    }
    for (const [key, value] of Object.entries(values)) env.set(`${source.prefix ?? ''}${key}`, value);
  }
  for (const variable of container.env ?? []) {
    const value = await resolveVar(pod, container, variable, context, env);
    if (value !== undefined) env.set(variable.name, value);
  }
  return env;
}

async function resolveVar(
  pod: V1Pod,
  container: V1Container,
  variable: V1EnvVar,
  context: ContainerContext,
  env: Map<string, string>,
): Promise<string | undefined> {
  if (variable.valueFrom === undefined) return expandVars(variable.value ?? '', env);
  const from = variable.valueFrom;
  const keyRef = from.secretKeyRef ?? from.configMapKeyRef;
  if (keyRef !== undefined) {
    const kind = from.secretKeyRef !== undefined ? 'Secret' : 'ConfigMap';
    const value = await context.readKey(kind, keyRef.name ?? '', keyRef.key);
    if (value === undefined && keyRef.optional !== true) {
      throw new ContainerConfigError(`couldn't find key ${keyRef.key} in ${kind} ${pod.metadata?.namespace ?? ''}/${keyRef.name ?? ''}`);
    }
    return value;
  }
  if (from.fieldRef !== undefined) return fieldValue(pod, from.fieldRef.fieldPath, context);
  if (from.resourceFieldRef !== undefined) {
    const resource = from.resourceFieldRef.resource;
    const [kind, name] = resource.split('.') as ['limits' | 'requests', string];
    const quantity = container.resources?.[kind]?.[name];
    if (quantity === undefined) return name === 'cpu' ? '2' : String(4 * 2 ** 30); // node allocatable, as the kubelet
    const divisor = from.resourceFieldRef.divisor ?? '1';
    const value = name === 'cpu' ? milliCpu(quantity) / milliCpu(divisor) : bytes(quantity) / bytes(divisor);
    return String(Math.ceil(value));
  }
  return undefined;
}

/** The downward API fields the kubelet resolves for env (pkg/fieldpath plus the status fields it fills itself). */
export function fieldValue(pod: V1Pod, fieldPath: string, context: Pick<ContainerContext, 'podIP' | 'hostIP'>): string {
  const meta = pod.metadata ?? {};
  const mapKey = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (mapKey !== null) return (mapKey[1] === 'labels' ? meta.labels : meta.annotations)?.[mapKey[2] ?? ''] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
      return context.hostIP;
    case 'status.podIP':
    case 'status.podIPs':
      return context.podIP;
    default:
      throw new ContainerConfigError(`unsupported fieldPath: ${fieldPath}`);
  }
}

/** `$(VAR)` expansion of command, args and env values (third_party/forked/golang/expansion): `$$` escapes. */
export function expandVars(input: string, env: Map<string, string>): string {
  return input.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return env.get(name) ?? whole;
  });
}
