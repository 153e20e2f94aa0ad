import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { WorkerManagerError, type PluginLogger } from '@worker-manager/plugin-sdk';
import { mapKubeError } from './kubeErrors.ts';

/** One permission the plugin needs: `verb` on `resource` (and `subresource`) of `group`, in the namespace or cluster-wide. */
interface Need {
  group: string;
  resource: string;
  subresource?: string;
  verb: string;
  clusterWide?: boolean;
}

/** Everything config/examples/kubernetes/rbac.yaml grants; keep the two in step. */
const NEEDS: readonly Need[] = [
  ...['get', 'list', 'watch', 'create', 'patch', 'delete'].map((verb) => ({ group: '', resource: 'pods', verb })),
  { group: '', resource: 'pods', subresource: 'log', verb: 'get' },
  { group: '', resource: 'pods', subresource: 'exec', verb: 'create' },
  { group: '', resource: 'pods', subresource: 'portforward', verb: 'create' },
  ...['get', 'list', 'create', 'update', 'patch', 'delete'].map((verb) => ({ group: '', resource: 'secrets', verb })),
  ...['get', 'list', 'create', 'update', 'patch', 'delete'].map((verb) => ({ group: 'networking.k8s.io', resource: 'networkpolicies', verb })),
  { group: '', resource: 'nodes', verb: 'list', clusterWide: true },
  { group: '', resource: 'pods', verb: 'list', clusterWide: true },
];

const describeNeed = (n: Need): string =>
  `${n.verb} ${n.group === '' ? '' : `${n.group}/`}${n.resource}${n.subresource === undefined ? '' : `/${n.subresource}`}${n.clusterWide === true ? ' (cluster-wide)' : ''}`;

/**
 * Asks the apiserver (SelfSubjectAccessReview) whether the plugin's identity may do everything it needs in the
 * namespace, so a missing RBAC rule fails the instance at start with the list of what is missing, not a worker later.
 * An apiserver that cannot be reached is only a warning: the informer keeps retrying, and calls fail on their own.
 */
export async function checkAccess(kubeConfig: KubeConfig, namespace: string, instance: string, logger: PluginLogger): Promise<void> {
  const api = kubeConfig.makeApiClient(AuthorizationV1Api);
  let denied: string[];
  try {
    const answers = await Promise.all(
      NEEDS.map(async (n) => {
        const review = await api.createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: {
                group: n.group,
                resource: n.resource,
                verb: n.verb,
                ...(n.subresource === undefined ? {} : { subresource: n.subresource }),
                ...(n.clusterWide === true ? {} : { namespace }),
              },
            },
          },
        });
        return review.status?.allowed === true ? undefined : describeNeed(n);
      }),
    );
    denied = answers.filter((a): a is string => a !== undefined);
  } catch (error) {
    const mapped = mapKubeError(error, 'check permissions', { instance });
    if (mapped.code === 'WM_ERR_NETWORK') {
      logger.warn('kubernetes provider: could not check permissions (apiserver unreachable)', { instance, error: mapped.message });
      return;
    }
    throw mapped;
  }
  if (denied.length > 0) {
    throw new WorkerManagerError('WM_ERR_AUTHORIZATION', `kubernetes provider: the identity of instance '${instance}' may not ${denied.join(', ')} in namespace '${namespace}' (see config/examples/kubernetes/rbac.yaml)`, {
      details: { instance, namespace, denied },
    });
  }
}
