import type { V1NetworkPolicy, V1NetworkPolicyEgressRule } from '@kubernetes/client-node';
import type { RuntimeSpec } from '@worker-manager/plugin-sdk';

/** Cluster DNS: a Strict worker may still resolve names (the answers lead nowhere it may go, but tools expect DNS). */
const DNS_EGRESS: V1NetworkPolicyEgressRule = {
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};

/**
 * The NetworkPolicy of a worker with `Strict` or `Complete` isolation, selecting its pod alone; undefined for
 * `Default`. Both deny every ingress. `Strict` allows egress to cluster DNS and to the spec's `AllowIpRange` CIDRs;
 * `Complete` denies every egress (a pod always has an interface: "no network" is "no traffic"). Enforcement is the
 * CNI's: a cluster whose network plugin ignores NetworkPolicy (kubenet, flannel alone) does not isolate.
 */
export function planNetworkPolicy(spec: RuntimeSpec, name: string, podLabels: Record<string, string>): V1NetworkPolicy | undefined {
  const isolation = spec.network?.isolation;
  if (isolation !== 'Strict' && isolation !== 'Complete') return undefined;
  const egress: V1NetworkPolicyEgressRule[] = [];
  if (isolation === 'Strict') {
    egress.push(DNS_EGRESS);
    for (const policy of spec.network?.accessPolicies ?? []) {
      if (policy.type === 'AllowIpRange') egress.push({ to: [{ ipBlock: { cidr: policy.cidr } }] });
    }
  }
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, labels: { ...podLabels } },
    spec: { podSelector: { matchLabels: { ...podLabels } }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress },
  };
}
