import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeConfig, RbacAuthorizationV1Api, type V1ClusterRole, type V1Role } from '@kubernetes/client-node';
import { createPluginHarness } from '@worker-manager/plugin-sdk/testing';
import { parseAllDocuments } from 'yaml';
import plugin from '@worker-manager/plugin-kubernetes';
import { requireKube } from '../../helpers/requireKube.ts';
import { budget, waitFor } from '../../helpers/waitFor.ts';
import type { TestNode } from '../../k8s/testCluster.ts';
import { startKubeWorld, tempDir, type KubeWorld } from './helpers.ts';

const kube = await requireKube();
const rbacFile = fileURLToPath(new URL('../../../config/examples/kubernetes/rbac.yaml', import.meta.url));

/** The Role and ClusterRole of the shipped example, as the operator would apply them. */
function shippedRoles(): { role: V1Role; clusterRole: V1ClusterRole } {
  const docs = parseAllDocuments(readFileSync(rbacFile, 'utf8')).map((d) => d.toJSON() as { kind: string });
  return { role: docs.find((d) => d.kind === 'Role') as V1Role, clusterRole: docs.find((d) => d.kind === 'ClusterRole') as V1ClusterRole };
}

describe('kubernetes provider: RBAC self-check at start', { skip: kube.skip }, () => {
  let world: KubeWorld;
  let node: TestNode;
  let config: Record<string, unknown>;
  let dir: string;
  const rbac = kube.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const suffix = randomBytes(3).toString('hex');
  const clusterObjects: string[] = [];

  before(async () => {
    world = await startKubeWorld(kube.kubeConfig, 'wm-k8s-rbac');
    node = world.node;
    config = world.config;
    dir = await tempDir('wm-k8s-rbac-');
  });
  after(async () => {
    for (const name of clusterObjects) {
      await rbac.deleteClusterRoleBinding({ name }).catch(() => {});
      await rbac.deleteClusterRole({ name }).catch(() => {});
    }
    await world?.close();
  });

  /** A service account bound to `rules` (namespace) and the shipped ClusterRole, and a kubeconfig file with its token. */
  async function identity(name: string, role: V1Role): Promise<string> {
    const ns = node.namespace;
    await node.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name }, rules: role.rules ?? [] } });
    await rbac.createNamespacedRoleBinding({ namespace: ns, body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: ns }] } });
    const cluster = `${name}-${suffix}`;
    clusterObjects.push(cluster);
    await rbac.createClusterRole({ body: { metadata: { name: cluster }, rules: shippedRoles().clusterRole.rules ?? [] } });
    await rbac.createClusterRoleBinding({ body: { metadata: { name: cluster }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cluster }, subjects: [{ kind: 'ServiceAccount', name, namespace: ns }] } });
    // 1.20: the token controller writes the account's token Secret.
    const tokenSecret = await waitFor(
      () => node.core.readNamespacedServiceAccount({ name, namespace: ns }).then((sa) => sa.secrets?.[0]?.name, () => undefined),
      `the token of ${name}`,
      60_000,
      200,
    );
    const token = Buffer.from((await node.core.readNamespacedSecret({ name: tokenSecret, namespace: ns })).data?.['token'] ?? '', 'base64').toString('utf8');
    const admin = kube.kubeConfig.getCurrentCluster()!;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server: admin.server, caData: admin.caData, caFile: admin.caFile, skipTLSVerify: false }],
      users: [{ name, token }],
      contexts: [{ name: 'test', cluster: 'test', user: name, namespace: ns }],
      currentContext: 'test',
    });
    const file = path.join(dir, `${name}.kubeconfig`);
    writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
    return file;
  }

  it('starts with exactly the shipped Role and ClusterRole (config/examples/kubernetes/rbac.yaml)', { timeout: budget(180_000) }, async () => {
    const kubeconfig = await identity('wm-granted', shippedRoles().role);
    const h = await createPluginHarness(plugin, { config: { ...config, kubeconfig }, hostId: 'k8s-rbac', instance: 'granted' });
    try {
      // And the grant is enough for a worker's whole life with a secret.
      await h.proxy.createWorker({ workerId: 'rbac', spec: { image: 'local/busybox:latest', command: ['sleep', '600'] }, secrets: [{ strategy: 'file', name: 's', version: '1', path: 's', value: 'v' }] });
      assert.deepEqual((await h.proxy.terminateWorker({ workerId: 'rbac', gracePeriodMs: 0 })).workerId, 'rbac');
    } finally {
      await h.close();
    }
  });

  it('refuses to start, naming what is missing, when the Role lacks a permission', { timeout: budget(180_000) }, async () => {
    const role = shippedRoles().role;
    const withoutSecrets: V1Role = { ...role, rules: (role.rules ?? []).filter((r) => !(r.resources ?? []).includes('secrets')) };
    const kubeconfig = await identity('wm-denied', withoutSecrets);
    await assert.rejects(createPluginHarness(plugin, { config: { ...config, kubeconfig }, hostId: 'k8s-rbac', instance: 'denied' }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'WM_ERR_AUTHORIZATION');
      assert.match(error.message, /may not get secrets, list secrets, create secrets/);
      assert.doesNotMatch(error.message, /pods/, 'only what is missing is named');
      return true;
    });
  });
});
