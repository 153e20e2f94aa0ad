import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import type { ResolvedConfig } from './config.ts';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The cluster of an instance: a kubeconfig file (and context), the in-cluster service account, or the defaults. */
export function loadKubeConfig(config: ResolvedConfig, instance: string): { kubeConfig: KubeConfig; namespace: string } {
  const kubeConfig = new KubeConfig();
  try {
    if (config.inCluster) {
      // client-node builds the server URL from these two, and a plugin thread sees only its entry's `env`: without them
      // every call would go to https://undefined:undefined.
      const missing = ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'].filter((name) => (process.env[name] ?? '') === '');
      if (missing.length > 0) throw new Error(`inCluster needs ${missing.join(' and ')} in the plugin's env (plugins[].env)`);
      kubeConfig.loadFromCluster();
    } else if (config.kubeconfig !== undefined) {
      kubeConfig.loadFromFile(config.kubeconfig);
    } else {
      kubeConfig.loadFromDefault();
    }
    if (config.context !== undefined) kubeConfig.setCurrentContext(config.context);
  } catch (cause) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `kubernetes provider: cannot load the cluster config: ${cause instanceof Error ? cause.message : String(cause)}`, {
      details: { instance, kubeconfig: config.kubeconfig, context: config.context },
    });
  }
  if (kubeConfig.getCurrentCluster() === null) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', 'kubernetes provider: the kubeconfig names no cluster for its context', { details: { instance, context: config.context } });
  }
  return { kubeConfig, namespace: config.namespace ?? defaultNamespace(config, kubeConfig) };
}

function defaultNamespace(config: ResolvedConfig, kubeConfig: KubeConfig): string {
  if (config.inCluster) {
    try {
      return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim();
    } catch {
      return 'default';
    }
  }
  return kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'default';
}
