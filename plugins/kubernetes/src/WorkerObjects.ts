import { PatchStrategy, setHeaderOptions, type CoreV1Api, type NetworkingV1Api, type V1NetworkPolicy, type V1Pod, type V1Secret } from '@kubernetes/client-node';
import type { PluginLogger } from '@worker-manager/plugin-sdk';
import { isConflict, isNotFound, mapKubeError } from './kubeErrors.ts';
import type { Names } from './names.ts';

/** What {@link WorkerObjects.removeOrphans} removed. */
export interface OrphanReport {
  secrets: string[];
  networkPolicies: string[];
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * The objects a worker has beside its pod: its Secret (secret mounts) and its NetworkPolicy (isolation), each owned by
 * the pod through `ownerReferences` so garbage collection removes them with it. Errors about Secrets never quote the
 * apiserver (it may echo content).
 */
export class WorkerObjects {
  readonly #core: CoreV1Api;
  readonly #networking: NetworkingV1Api;
  readonly #namespace: string;
  readonly #names: Names;
  readonly #logger: PluginLogger;

  constructor(deps: { core: CoreV1Api; networking: NetworkingV1Api; namespace: string; names: Names; logger: PluginLogger }) {
    this.#core = deps.core;
    this.#networking = deps.networking;
    this.#namespace = deps.namespace;
    this.#names = deps.names;
    this.#logger = deps.logger;
  }

  /** Creates the Secret, or replaces one a failed create left behind. Errors about Secrets never quote the apiserver. */
  async putSecret(secret: V1Secret, workerId: string): Promise<void> {
    try {
      await this.#core.createNamespacedSecret({ namespace: this.#namespace, body: secret });
    } catch (error) {
      if (!isConflict(error)) throw mapKubeError(error, 'create secret', { workerId }, true);
      try {
        await this.#core.replaceNamespacedSecret({ name: secret.metadata!.name!, namespace: this.#namespace, body: secret });
      } catch (again) {
        throw mapKubeError(again, 'replace secret', { workerId }, true);
      }
    }
  }

  /** Makes `pod` the Secret's owner, so garbage collection removes the Secret with the pod. */
  async ownSecret(workerId: string, pod: V1Pod): Promise<void> {
    const ownerReferences = [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! }];
    try {
      await this.#core.patchNamespacedSecret({ name: this.#names.secret(workerId), namespace: this.#namespace, body: { metadata: { ownerReferences } } }, MERGE_PATCH);
    } catch (error) {
      throw mapKubeError(error, 'own secret', { workerId }, true);
    }
  }

  async deleteSecret(workerId: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedSecret({ name: this.#names.secret(workerId), namespace: this.#namespace });
    } catch (error) {
      if (!isNotFound(error)) this.#logger.warn('kubernetes provider: could not delete a secret', { workerId, status: (error as { code?: number }).code });
    }
  }

  async putPolicy(policy: V1NetworkPolicy, workerId: string): Promise<void> {
    try {
      await this.#networking.createNamespacedNetworkPolicy({ namespace: this.#namespace, body: policy });
    } catch (error) {
      if (!isConflict(error)) throw mapKubeError(error, 'create network policy', { workerId });
      try {
        await this.#networking.replaceNamespacedNetworkPolicy({ name: policy.metadata!.name!, namespace: this.#namespace, body: policy });
      } catch (again) {
        throw mapKubeError(again, 'replace network policy', { workerId });
      }
    }
  }

  /** Makes `pod` the owner of the worker's NetworkPolicy (garbage collection), or no one (null) before a restart. */
  async setPolicyOwner(workerId: string, pod: V1Pod | null): Promise<void> {
    const ownerReferences = pod === null ? null : [{ apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name!, uid: pod.metadata!.uid! }];
    try {
      await this.#networking.patchNamespacedNetworkPolicy({ name: this.#names.networkPolicy(workerId), namespace: this.#namespace, body: { metadata: { ownerReferences } } }, MERGE_PATCH);
    } catch (error) {
      if (pod === null && isNotFound(error)) return;
      throw mapKubeError(error, 'own network policy', { workerId });
    }
  }

  async deletePolicy(workerId: string): Promise<void> {
    try {
      await this.#networking.deleteNamespacedNetworkPolicy({ name: this.#names.networkPolicy(workerId), namespace: this.#namespace });
    } catch (error) {
      if (!isNotFound(error)) this.#logger.warn('kubernetes provider: could not delete a network policy', { workerId, status: (error as { code?: number }).code });
    }
  }

  async readPolicy(workerId: string): Promise<V1NetworkPolicy | undefined> {
    try {
      return await this.#networking.readNamespacedNetworkPolicy({ name: this.#names.networkPolicy(workerId), namespace: this.#namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw mapKubeError(error, 'read network policy', { workerId });
    }
  }

  async readSecret(workerId: string): Promise<V1Secret | undefined> {
    try {
      return await this.#core.readNamespacedSecret({ name: this.#names.secret(workerId), namespace: this.#namespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw mapKubeError(error, 'read secret', { workerId }, true);
    }
  }

  /**
   * Removes the Secrets and NetworkPolicies of this instance that no pod owns, are older than `graceMs`, and whose
   * worker has no pod: what a create that died between its Secret (or policy) and its pod left behind. Owned objects
   * are garbage collection's. Returns the names removed.
   */
  async removeOrphans(labelSelector: string, workerIdKey: string, graceMs: number, podExists: (workerId: string) => Promise<boolean>): Promise<OrphanReport> {
    const report: OrphanReport = { secrets: [], networkPolicies: [] };
    const now = Date.now();
    const candidates = async (items: Array<{ metadata?: { name?: string; labels?: Record<string, string>; ownerReferences?: unknown[]; creationTimestamp?: Date } }>) => {
      const out: Array<{ name: string; workerId: string }> = [];
      for (const item of items) {
        const m = item.metadata;
        const workerId = m?.labels?.[workerIdKey];
        if (m?.name === undefined || workerId === undefined || (m.ownerReferences?.length ?? 0) > 0) continue;
        if (now - new Date(m.creationTimestamp ?? now).getTime() < graceMs) continue;
        if (!(await podExists(workerId))) out.push({ name: m.name, workerId });
      }
      return out;
    };
    try {
      const secrets = (await this.#core.listNamespacedSecret({ namespace: this.#namespace, labelSelector })).items;
      for (const o of await candidates(secrets)) {
        await this.#core.deleteNamespacedSecret({ name: o.name, namespace: this.#namespace }).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
        report.secrets.push(o.name);
      }
      const policies = (await this.#networking.listNamespacedNetworkPolicy({ namespace: this.#namespace, labelSelector })).items;
      for (const o of await candidates(policies)) {
        await this.#networking.deleteNamespacedNetworkPolicy({ name: o.name, namespace: this.#namespace }).catch((error: unknown) => (isNotFound(error) ? undefined : Promise.reject(error)));
        report.networkPolicies.push(o.name);
      }
    } catch (error) {
      throw mapKubeError(error, 'remove orphans', {}, true);
    }
    if (report.secrets.length + report.networkPolicies.length > 0) this.#logger.warn('kubernetes provider: removed orphaned objects', { ...report });
    return report;
  }

  /** Replaces some keys of the worker's Secret (a refresh). */
  async patchSecretData(workerId: string, data: Record<string, string>): Promise<void> {
    try {
      await this.#core.patchNamespacedSecret({ name: this.#names.secret(workerId), namespace: this.#namespace, body: { data } }, MERGE_PATCH);
    } catch (error) {
      throw mapKubeError(error, 'update secret', { workerId }, true);
    }
  }
}
