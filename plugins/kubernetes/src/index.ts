import { definePlugin } from '@worker-manager/plugin-sdk';
import { checkAccess } from './checkAccess.ts';
import { KubernetesConfig, resolveConfig } from './config.ts';
import { loadKubeConfig } from './kubeClient.ts';
import { KubernetesProvider } from './KubernetesProvider.ts';

export { KubernetesConfig, resolveConfig, type ResolvedConfig } from './config.ts';
export { KubernetesProvider } from './KubernetesProvider.ts';

/**
 * The Kubernetes provider: each worker is a Pod in the instance's namespace, its secret mounts one Secret owned by
 * the pod. One instance is one cluster and namespace. See README.md for what maps to what, the RBAC it needs, limits.
 */
export default definePlugin({
  id: 'kubernetes',
  version: '0.1.0',
  kind: 'provider',
  hostApi: '^2.0.0',
  description: 'Runs each worker as a Pod on a Kubernetes cluster.',
  capabilities: {
    'worker.lifecycle': '2.0.0',
    'worker.logs': '1.0.0',
    'worker.logs.follow': '1.0.0',
    'worker.exec': '1.0.0',
    'worker.restart': '1.0.0',
    'worker.portForward': '1.0.0',
    'worker.capacity': '1.0.0',
    'worker.events': '1.0.0',
    'worker.resources.memory': '1.0.0',
    'worker.resources.cpu': '1.0.0',
    'worker.resources.gpu': '1.0.0',
    'worker.image': '1.0.0',
    'worker.volumes': '1.0.0',
    'worker.network.isolation': '1.0.0',
    'worker.healthCheck': '1.0.0',
    'worker.secrets.env': '1.0.0',
    'worker.secrets.file': '1.0.0',
    'worker.secrets.refresh': '1.0.0',
  },
  configSchema: KubernetesConfig,
  async setup(ctx) {
    const config = resolveConfig(ctx.config);
    const { kubeConfig, namespace } = loadKubeConfig(config, ctx.instance);
    if (config.checkPermissions) await checkAccess(kubeConfig, namespace, ctx.instance, ctx.logger);
    return new KubernetesProvider(ctx, config, kubeConfig, namespace).handlers();
  },
});
