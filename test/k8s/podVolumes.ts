import { access, mkdir, open, chmod } from 'node:fs/promises';
import path from 'node:path';
import type { CoreV1Api, V1KeyToPath, V1Pod, V1Volume } from '@kubernetes/client-node';
import { writeAtomically, type VolumeFile } from './atomicWriter.ts';
import { fieldValue } from './containerConfig.ts';

/** A volume the kubelet cannot set up yet (missing Secret, failed hostPath check): the pod stays ContainerCreating. */
export class VolumeMountError extends Error {}

export interface MountedVolumes {
  paths: Map<string, string>;
  readOnly: Set<string>;
}

/** Reads a Secret's or ConfigMap's data as bytes by key; undefined when it does not exist. */
export async function readObjectData(
  core: CoreV1Api,
  kind: 'Secret' | 'ConfigMap',
  namespace: string,
  name: string,
): Promise<Map<string, Buffer> | undefined> {
  try {
    if (kind === 'Secret') {
      const secret = await core.readNamespacedSecret({ name, namespace });
      return new Map(Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]));
    }
    const configMap = await core.readNamespacedConfigMap({ name, namespace });
    return new Map([
      ...Object.entries(configMap.data ?? {}).map(([key, value]): [string, Buffer] => [key, Buffer.from(value, 'utf8')]),
      ...Object.entries(configMap.binaryData ?? {}).map(([key, value]): [string, Buffer] => [key, Buffer.from(value, 'base64')]),
    ]);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export function isNotFound(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && (error as { code: unknown }).code === 404;
}

/** The kubelet's projection of keys to files: all keys, or only `items` (each with its own path and mode). */
function project(data: Map<string, Buffer>, items: V1KeyToPath[] | undefined, defaultMode: number, what: string, optional: boolean): VolumeFile[] {
  if (items === undefined || items.length === 0) {
    return [...data].map(([key, content]) => ({ path: key, content, mode: defaultMode }));
  }
  const files: VolumeFile[] = [];
  for (const item of items) {
    const content = data.get(item.key);
    if (content === undefined) {
      if (optional) continue;
      throw new VolumeMountError(`configmap or secret references non-existent key ${item.key} (${what})`);
    }
    files.push({ path: item.path, content, mode: item.mode ?? defaultMode });
  }
  return files;
}

/**
 * Sets up (or refreshes) every volume of a pod under `podDir`, as the kubelet's volume manager does, and returns the
 * host folder of each. Secret, ConfigMap, projected and downward API volumes are written with the atomic `..data`
 * swap, so calling this again after a Secret changed updates the files a running container sees.
 */
export async function mountVolumes(core: CoreV1Api, pod: V1Pod, podDir: string, podIP: string): Promise<MountedVolumes> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const paths = new Map<string, string>();
  const readOnly = new Set<string>();
  for (const volume of pod.spec?.volumes ?? []) {
    const dir = (plugin: string): string => path.join(podDir, 'volumes', `kubernetes.io~${plugin}`, volume.name);
    if (volume.emptyDir !== undefined) {
      const target = dir('empty-dir');
      await mkdir(target, { recursive: true });
      // World-writable like the kubelet's emptyDir, so a container running as non-root can write into it.
      await chmod(target, 0o777);
      paths.set(volume.name, target);
    } else if (volume.hostPath !== undefined) {
      await checkHostPath(volume);
      paths.set(volume.name, volume.hostPath.path);
    } else if (volume.secret !== undefined || volume.configMap !== undefined) {
      const kind = volume.secret !== undefined ? 'Secret' : 'ConfigMap';
      const source = volume.secret ?? volume.configMap;
      const name = volume.secret?.secretName ?? volume.configMap?.name ?? '';
      const optional = source?.optional === true;
      const data = await readObjectData(core, kind, namespace, name);
      if (data === undefined && !optional) throw new VolumeMountError(`${kind.toLowerCase()} "${name}" not found`);
      const files = project(data ?? new Map(), source?.items, source?.defaultMode ?? 0o644, `${kind} ${name}`, optional);
      const target = dir(kind === 'Secret' ? 'secret' : 'configmap');
      await writeAtomically(target, files);
      paths.set(volume.name, target);
      readOnly.add(volume.name);
    } else if (volume.projected !== undefined || volume.downwardAPI !== undefined) {
      const files = await projectedFiles(core, pod, volume, podIP);
      const target = dir(volume.projected !== undefined ? 'projected' : 'downward-api');
      await writeAtomically(target, files);
      paths.set(volume.name, target);
      readOnly.add(volume.name);
    } else {
      throw new VolumeMountError(`volume "${volume.name}": this volume type is not emulated by the test node agent`);
    }
  }
  return { paths, readOnly };
}

async function checkHostPath(volume: V1Volume): Promise<void> {
  const hostPath = volume.hostPath?.path ?? '';
  const type = volume.hostPath?.type ?? '';
  const exists = await access(hostPath).then(
    () => true,
    () => false,
  );
  if (type === 'DirectoryOrCreate' && !exists) await mkdir(hostPath, { recursive: true, mode: 0o755 });
  else if (type === 'FileOrCreate' && !exists) {
    await mkdir(path.dirname(hostPath), { recursive: true });
    await (await open(hostPath, 'a', 0o644)).close();
  } else if (type !== '' && !exists) {
    throw new VolumeMountError(`hostPath type check failed: ${hostPath} does not exist (type ${type})`);
  }
}

async function projectedFiles(core: CoreV1Api, pod: V1Pod, volume: V1Volume, podIP: string): Promise<VolumeFile[]> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const files: VolumeFile[] = [];
  const downward = (items: { path: string; fieldRef?: { fieldPath: string }; mode?: number }[], mode: number): void => {
    for (const item of items) {
      if (item.fieldRef === undefined) throw new VolumeMountError(`downwardAPI item ${item.path}: only fieldRef is emulated`);
      files.push({ path: item.path, content: Buffer.from(fieldValue(pod, item.fieldRef.fieldPath, { podIP, hostIP: '127.0.0.1' })), mode: item.mode ?? mode });
    }
  };
  if (volume.downwardAPI !== undefined) {
    downward(volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644);
    return files;
  }
  const projected = volume.projected;
  const defaultMode = projected?.defaultMode ?? 0o644;
  for (const source of projected?.sources ?? []) {
    if (source.secret !== undefined || source.configMap !== undefined) {
      const kind = source.secret !== undefined ? 'Secret' : 'ConfigMap';
      const ref = source.secret ?? source.configMap;
      const data = await readObjectData(core, kind, namespace, ref?.name ?? '');
      if (data === undefined && ref?.optional !== true) throw new VolumeMountError(`${kind.toLowerCase()} "${ref?.name ?? ''}" not found`);
      files.push(...project(data ?? new Map(), ref?.items, defaultMode, `${kind} ${ref?.name ?? ''}`, ref?.optional === true));
    } else if (source.downwardAPI !== undefined) {
      downward(source.downwardAPI.items ?? [], defaultMode);
    } else if (source.serviceAccountToken !== undefined) {
      const request = await core.createNamespacedServiceAccountToken({
        name: pod.spec?.serviceAccountName ?? 'default',
        namespace,
        body: {
          spec: {
            audiences: source.serviceAccountToken.audience === undefined ? [] : [source.serviceAccountToken.audience],
            expirationSeconds: source.serviceAccountToken.expirationSeconds ?? 3600,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
          },
        },
      });
      files.push({ path: source.serviceAccountToken.path, content: Buffer.from(request.status?.token ?? ''), mode: defaultMode });
    }
  }
  return files;
}
