import { existsSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { KubeConfig, VersionApi } from '@kubernetes/client-node';
import { within } from './waitFor.ts';

const START_COMMAND = 'bash .ci/kube up';

/** The folder `.ci/kube up` writes the kubeconfig and PKI into (WM_KUBE_DIR, default /tmp/wm-kube). */
export const KUBE_DIR = process.env['WM_KUBE_DIR'] ?? '/tmp/wm-kube';

function loadKubeConfig(): KubeConfig {
  const kubeConfig = new KubeConfig();
  const file = path.join(KUBE_DIR, 'kubeconfig');
  if (existsSync(file)) kubeConfig.loadFromFile(file);
  else {
    // Where `.ci/kube up` would serve; calls fail with a connection error naming it, never against another cluster.
    kubeConfig.loadFromClusterAndUser(
      { name: 'wm-test', server: `https://127.0.0.1:${process.env['WM_KUBE_APISERVER_PORT'] ?? '16443'}`, skipTLSVerify: false },
      { name: 'wm-test-user' },
    );
  }
  return kubeConfig;
}

async function reachable(kubeConfig: KubeConfig): Promise<string | undefined> {
  if (!existsSync(path.join(KUBE_DIR, 'kubeconfig'))) return `no kubeconfig in ${KUBE_DIR}`;
  try {
    // A stopped apiserver refuses at once; the budget only bounds one that hangs on a loaded machine.
    const version = await within(kubeConfig.makeApiClient(VersionApi).getCode(), 'the Kubernetes apiserver to answer /version', 30_000);
    if (version.gitVersion !== 'v1.20.2') return `unexpected apiserver version ${version.gitVersion}`;
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Checks that the test cluster of `.ci/kube up` (kube-apiserver, controller-manager and scheduler v1.20.2 on
 * 127.0.0.1) answers, once per test file, and returns its admin kubeconfig. Use `skip` as the `skip` option of the
 * file's top-level describe.
 *
 * - Reachable: `skip` is `false`.
 * - Unreachable with `CI=true`: registers a failing test naming the cause; `skip` is `false`, so every Kubernetes
 *   test also runs and fails: CI never skips them (../shared/TESTING.md).
 * - Unreachable elsewhere: prints a loud message naming `bash .ci/kube up`; `skip` is that message.
 */
export async function requireKube(): Promise<{ skip: string | false; kubeConfig: KubeConfig }> {
  const kubeConfig = loadKubeConfig();
  const problem = await reachable(kubeConfig);
  if (problem === undefined) return { skip: false, kubeConfig };
  const message = `Kubernetes test cluster not available (${problem}); start it with \`${START_COMMAND}\` (the first run builds Kubernetes, 7-25 minutes)`;
  if (process.env['CI'] === 'true') {
    it('Kubernetes test cluster is reachable (required in CI)', () => {
      throw new Error(message);
    });
    return { skip: false, kubeConfig };
  }
  console.error(`\n!!! SKIPPING Kubernetes tests: ${message}\n`);
  return { skip: message, kubeConfig };
}
