import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireDocker } from '../helpers/requireDocker.ts';
import { requireKube } from '../helpers/requireKube.ts';
import { budget, waitFor } from '../helpers/waitFor.ts';
import { AGENT_LABEL } from './containerConfig.ts';
import { NodeAgent } from './nodeAgent.ts';
import { isNotFound } from './podVolumes.ts';
import {
  busybox,
  condition,
  containerStatus,
  createPod,
  dockerExec,
  dockerId,
  isRunningAndReady,
  podOn,
  startTestNode,
  waitForPod,
  waitForEvents,
  waitForPodGone,
  type TestNode,
} from './testCluster.ts';

const kube = await requireKube();
const dockerSkip = await requireDocker();

describe('test node agent (a kubelet stand-in on Docker)', { skip: kube.skip || dockerSkip, timeout: budget(600_000) }, () => {
  let node: TestNode;
  const hostDirs: string[] = [];

  before(async () => {
    node = await startTestNode(kube.kubeConfig, 'wm-agent');
  });
  after(async () => {
    await node?.close();
    for (const dir of hostDirs) await rm(dir, { recursive: true, force: true });
  });

  it('registers a Ready, untainted Node that advertises its kubelet endpoint on 127.0.0.1', async () => {
    const registered = await node.core.readNode({ name: node.agent.name });
    assert.equal(registered.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    assert.deepEqual(registered.spec?.taints ?? [], []);
    assert.deepEqual(registered.status?.addresses?.find((a) => a.type === 'InternalIP')?.address, '127.0.0.1');
    assert.ok((registered.status?.daemonEndpoints?.kubeletEndpoint?.Port ?? 0) > 0);
    assert.equal(registered.status?.allocatable?.['cpu'], '2');
    assert.equal(registered.metadata?.labels?.['kubernetes.io/hostname'], node.agent.name);
  });

  it('runs a pod the scheduler binds to the node as a Docker container and reports it Running and Ready', async () => {
    await createPod(node, podOn(node, 'running', [busybox('main', 'sleep 3600')]));
    const pod = await waitForPod(node, 'running', isRunningAndReady, 'Running and Ready');
    assert.equal(pod.spec?.nodeName, node.agent.name, 'the real scheduler bound it');
    for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']) assert.equal(condition(pod, type), 'True', type);
    const status = containerStatus(pod, 'main');
    assert.ok(status?.state?.running?.startedAt !== undefined);
    assert.equal(status?.ready, true);
    assert.equal(status?.started, true);
    assert.equal(status?.restartCount, 0);
    assert.match(status?.imageID ?? '', /^docker:\/\/sha256:/);
    assert.equal(pod.status?.hostIP, '127.0.0.1');
    assert.match(pod.status?.podIP ?? '', /^\d+\.\d+\.\d+\.\d+$/);
    assert.ok(pod.status?.startTime !== undefined);
    const info = await node.docker.getContainer(dockerId(status?.containerID)).inspect();
    assert.equal(info.State.Running, true);
    assert.equal(info.Config.Labels[AGENT_LABEL], node.agent.name);
    assert.equal(info.Name, `/k8s_main_running_${node.namespace}_${pod.metadata?.uid ?? ''}_0`);
    const events = await waitForEvents(node, 'running', ['Pulled', 'Created', 'Started']);
    assert.ok(events.includes('Normal Started: Started container main'), events.join('\n'));
  });

  it('reports exits as terminated with exit code and reason, and the pod phase by restartPolicy', async () => {
    await createPod(node, podOn(node, 'fails', [busybox('main', 'echo bye > /dev/termination-log; exit 3')]));
    await createPod(node, podOn(node, 'succeeds', [busybox('main', 'exit 0')]));
    const failed = await waitForPod(node, 'fails', (p) => p.status?.phase === 'Failed', 'phase Failed');
    const terminated = containerStatus(failed, 'main')?.state?.terminated;
    assert.equal(terminated?.exitCode, 3);
    assert.equal(terminated?.reason, 'Error');
    assert.equal(terminated?.message, 'bye\n', 'the terminationMessagePath file');
    assert.equal(condition(failed, 'Ready'), 'False');
    const succeeded = await waitForPod(node, 'succeeds', (p) => p.status?.phase === 'Succeeded', 'phase Succeeded');
    assert.equal(containerStatus(succeeded, 'main')?.state?.terminated?.reason, 'Completed');
    assert.equal(containerStatus(succeeded, 'main')?.state?.terminated?.exitCode, 0);
  });

  it('reports a container killed over its memory limit as OOMKilled with exit code 137', async () => {
    // `tail` buffers a "line" of /dev/zero that never ends, so it grows until the cgroup's limit kills it.
    await createPod(node, podOn(node, 'oom', [busybox('main', 'tail /dev/zero', { resources: { limits: { memory: '16Mi' } } })]));
    const pod = await waitForPod(node, 'oom', (p) => p.status?.phase === 'Failed', 'phase Failed');
    const terminated = containerStatus(pod, 'main')?.state?.terminated;
    assert.equal(terminated?.reason, 'OOMKilled');
    assert.equal(terminated?.exitCode, 137);
  });

  it('restarts a crashing container under restartPolicy Always, keeping the last exit and backing off', async () => {
    await createPod(node, podOn(node, 'crashloop', [busybox('main', 'exit 7')], { restartPolicy: 'Always' }));
    const pod = await waitForPod(
      node,
      'crashloop',
      (p) => containerStatus(p, 'main')?.state?.waiting?.reason === 'CrashLoopBackOff',
      'CrashLoopBackOff',
    );
    const status = containerStatus(pod, 'main');
    assert.ok((status?.restartCount ?? 0) >= 1);
    assert.equal(status?.lastState?.terminated?.exitCode, 7);
    assert.equal(pod.status?.phase, 'Running', 'a restarting pod stays Running (kubelet getPhase)');
  });

  it('deletes gracefully: preStop hook, SIGTERM within the grace period, then the pod object is removed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-kube-grace-'));
    hostDirs.push(dir);
    const script = "trap 'echo TERM >> /host/signal; exit 0' TERM; echo started > /host/signal; while true; do sleep 0.1; done";
    const main = busybox('main', script, {
      volumeMounts: [{ name: 'host', mountPath: '/host' }],
      lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo preStop >> /host/signal'] } } },
    });
    await createPod(
      node,
      podOn(node, 'graceful', [main], {
        terminationGracePeriodSeconds: 30,
        volumes: [{ name: 'host', hostPath: { path: dir, type: 'Directory' } }],
      }),
    );
    const pod = await waitForPod(node, 'graceful', isRunningAndReady, 'Running');
    const id = dockerId(containerStatus(pod, 'main')?.containerID);
    await waitFor(async () => (await readFile(path.join(dir, 'signal'), 'utf8').catch(() => '')) === 'started\n', 'the container to start');
    await node.core.deleteNamespacedPod({ name: 'graceful', namespace: node.namespace, gracePeriodSeconds: 20 });
    await waitForPodGone(node, 'graceful');
    assert.equal(await readFile(path.join(dir, 'signal'), 'utf8'), 'started\npreStop\nTERM\n', 'the preStop hook ran, then SIGTERM');
    // The kubelet removes dead containers after the pod object is gone; so does the agent, just after.
    await waitFor(
      () => node.docker.getContainer(id).inspect().then(() => false, (error: { statusCode?: number }) => error.statusCode === 404),
      'the container to be removed',
    );
  });

  it('kills a container that ignores SIGTERM once the grace period is over', async () => {
    // sh as PID 1 ignores SIGTERM: only the SIGKILL after terminationGracePeriodSeconds (2) ends it.
    await createPod(node, podOn(node, 'stubborn', [busybox('main', 'while true; do sleep 0.1; done')]));
    await waitForPod(node, 'stubborn', isRunningAndReady, 'Running');
    const started = Date.now();
    await node.core.deleteNamespacedPod({ name: 'stubborn', namespace: node.namespace });
    await waitForPodGone(node, 'stubborn');
    assert.ok(Date.now() - started >= 1_500, 'the grace period was waited');
  });

  it('passes env ($(VAR) expansion, Secret keys, downward API), command/args, and resources as Docker limits', async () => {
    await node.core.createNamespacedSecret({ namespace: node.namespace, body: { metadata: { name: 'env-secret' }, stringData: { token: 's3cret' } } });
    const main = busybox('main', '', {
      command: ['sh', '-c'],
      args: ['echo "$(GREETING) from $POD_NAME: $TOKEN"; sleep 3600'],
      env: [
        { name: 'WHO', value: 'agent' },
        { name: 'GREETING', value: 'hello $(WHO)' },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'env-secret', key: 'token' } } },
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ],
      resources: { limits: { cpu: '500m', memory: '64Mi' }, requests: { cpu: '250m', memory: '32Mi' } },
    });
    await createPod(node, podOn(node, 'configured', [main]));
    const pod = await waitForPod(node, 'configured', isRunningAndReady, 'Running');
    const info = await node.docker.getContainer(dockerId(containerStatus(pod, 'main')?.containerID)).inspect();
    assert.equal(info.HostConfig.Memory, 64 * 2 ** 20);
    assert.equal(info.HostConfig.CpuQuota, 50_000);
    assert.equal(info.HostConfig.CpuPeriod, 100_000);
    assert.equal(info.HostConfig.CpuShares, 256);
    assert.deepEqual(info.Config.Entrypoint, ['sh', '-c']);
    assert.ok(info.Config.Env.includes('GREETING=hello agent'));
    assert.ok(info.Config.Env.includes('TOKEN=s3cret'));
    assert.ok(info.Config.Env.includes('KUBERNETES_SERVICE_HOST=10.0.0.1'));
    const logs = await waitFor(async () => {
      const text = await node.core.readNamespacedPodLog({ name: 'configured', namespace: node.namespace });
      return text.includes('\n') ? text : undefined;
    }, 'the container to print');
    assert.equal(logs, 'hello agent from configured: s3cret\n');
  });

  it('refuses a container whose Secret key is missing as CreateContainerConfigError', async () => {
    const main = busybox('main', 'sleep 3600', { env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'absent', key: 'k' } } }] });
    await createPod(node, podOn(node, 'badenv', [main]));
    const pod = await waitForPod(node, 'badenv', (p) => containerStatus(p, 'main')?.state?.waiting?.reason === 'CreateContainerConfigError', 'CreateContainerConfigError');
    assert.equal(pod.status?.phase, 'Pending');
  });

  it('mounts Secret and ConfigMap volumes as files and swaps ..data atomically when the Secret changes', async () => {
    await node.core.createNamespacedSecret({ namespace: node.namespace, body: { metadata: { name: 'creds' }, stringData: { password: 'one' } } });
    await node.core.createNamespacedConfigMap({ namespace: node.namespace, body: { metadata: { name: 'settings' }, data: { 'mode.conf': 'fast' } } });
    const main = busybox('main', 'sleep 3600', {
      volumeMounts: [
        { name: 'creds', mountPath: '/etc/creds' },
        { name: 'settings', mountPath: '/etc/settings' },
      ],
    });
    await createPod(
      node,
      podOn(node, 'mounted', [main], {
        volumes: [
          { name: 'creds', secret: { secretName: 'creds', defaultMode: 0o400 } },
          { name: 'settings', configMap: { name: 'settings' } },
        ],
      }),
    );
    const pod = await waitForPod(node, 'mounted', isRunningAndReady, 'Running');
    const id = dockerId(containerStatus(pod, 'main')?.containerID);
    assert.equal(await dockerExec(node.docker, id, ['cat', '/etc/creds/password']), 'one');
    assert.equal(await dockerExec(node.docker, id, ['cat', '/etc/settings/mode.conf']), 'fast');
    assert.equal(await dockerExec(node.docker, id, ['busybox', 'readlink', '/etc/creds/password']), '..data/password\n');
    const before = await dockerExec(node.docker, id, ['busybox', 'readlink', '/etc/creds/..data']);
    assert.match(before, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+\n$/);
    assert.match(await dockerExec(node.docker, id, ['busybox', 'stat', '-L', '-c', '%a', '/etc/creds/password']), /^400/);

    await node.core.replaceNamespacedSecret({ name: 'creds', namespace: node.namespace, body: { metadata: { name: 'creds' }, stringData: { password: 'two' } } });
    await waitFor(async () => (await dockerExec(node.docker, id, ['cat', '/etc/creds/password'])) === 'two', 'the new Secret value in the mounted file', 60_000, 250);
    assert.notEqual(await dockerExec(node.docker, id, ['busybox', 'readlink', '/etc/creds/..data']), before, '..data points at a new version');
    assert.match(await dockerExec(node.docker, id, ['sh', '-c', 'touch /etc/creds/x 2>&1; echo $?']), /Read-only file system[\s\S]*1\n$/);
  });

  it('keeps a pod ContainerCreating while its Secret is missing, and starts it once the Secret exists', async () => {
    const main = busybox('main', 'cat /etc/late/key; sleep 3600', { volumeMounts: [{ name: 'late', mountPath: '/etc/late' }] });
    await createPod(node, podOn(node, 'late', [main], { volumes: [{ name: 'late', secret: { secretName: 'late' } }] }));
    const waiting = await waitForPod(node, 'late', (p) => containerStatus(p, 'main')?.state?.waiting?.reason === 'ContainerCreating' && containerStatus(p, 'main')?.state?.waiting?.message !== undefined, 'ContainerCreating with the mount error');
    assert.match(containerStatus(waiting, 'main')?.state?.waiting?.message ?? '', /secret "late" not found/);
    assert.equal(waiting.status?.phase, 'Pending');
    await node.core.createNamespacedSecret({ namespace: node.namespace, body: { metadata: { name: 'late' }, stringData: { key: 'arrived' } } });
    await waitForPod(node, 'late', isRunningAndReady, 'Running once the Secret exists');
  });

  it('shares an emptyDir between containers and binds a hostPath folder', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wm-kube-hostpath-'));
    hostDirs.push(dir);
    const writer = busybox('writer', 'echo shared > /cache/msg; echo host > /host/msg; sleep 3600', {
      volumeMounts: [
        { name: 'cache', mountPath: '/cache' },
        { name: 'host', mountPath: '/host' },
      ],
    });
    const reader = busybox('reader', 'sleep 3600', { volumeMounts: [{ name: 'cache', mountPath: '/data' }] });
    await createPod(
      node,
      podOn(node, 'volumes', [writer, reader], {
        volumes: [
          { name: 'cache', emptyDir: {} },
          { name: 'host', hostPath: { path: dir } },
        ],
      }),
    );
    const pod = await waitForPod(node, 'volumes', isRunningAndReady, 'Running');
    await waitFor(async () => (await readFile(path.join(dir, 'msg'), 'utf8').catch(() => '')) === 'host\n', 'the hostPath file on the host');
    const readerId = dockerId(containerStatus(pod, 'reader')?.containerID);
    await waitFor(async () => (await dockerExec(node.docker, readerId, ['cat', '/data/msg'])) === 'shared\n', 'the emptyDir file in the other container');
  });

  it('runs init containers in order before the app containers, and fails the pod when one fails under Never', async () => {
    const mount = { volumeMounts: [{ name: 'work', mountPath: '/work' }] };
    await createPod(
      node,
      podOn(node, 'initialized', [busybox('main', 'cat /work/order; sleep 3600', mount)], {
        initContainers: [busybox('first', 'echo one > /work/order', mount), busybox('second', 'echo two >> /work/order', mount)],
        volumes: [{ name: 'work', emptyDir: {} }],
      }),
    );
    const pod = await waitForPod(node, 'initialized', isRunningAndReady, 'Running after its init containers');
    assert.equal(condition(pod, 'Initialized'), 'True');
    assert.deepEqual(
      pod.status?.initContainerStatuses?.map((s) => [s.name, s.state?.terminated?.reason, s.state?.terminated?.exitCode]),
      [
        ['first', 'Completed', 0],
        ['second', 'Completed', 0],
      ],
    );
    const logs = await waitFor(async () => {
      const text = await node.core.readNamespacedPodLog({ name: 'initialized', namespace: node.namespace, container: 'main' });
      return text === '' ? undefined : text;
    }, 'the main container to print');
    assert.equal(logs, 'one\ntwo\n');

    await createPod(node, podOn(node, 'badinit', [busybox('main', 'sleep 3600')], { initContainers: [busybox('init', 'exit 2')] }));
    const failed = await waitForPod(node, 'badinit', (p) => p.status?.phase === 'Failed', 'phase Failed');
    assert.equal(condition(failed, 'Initialized'), 'False');
    assert.equal(failed.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode, 2);
    assert.equal(containerStatus(failed, 'main')?.state?.waiting?.reason, 'PodInitializing');
  });

  it('reports an absent image with pull policy Never as ErrImageNeverPull, and keeps the pod Pending', async () => {
    await createPod(node, podOn(node, 'noimage', [{ name: 'main', image: 'local/absent:1', imagePullPolicy: 'Never' }]));
    const pod = await waitForPod(node, 'noimage', (p) => containerStatus(p, 'main')?.state?.waiting?.reason === 'ErrImageNeverPull', 'ErrImageNeverPull');
    assert.equal(containerStatus(pod, 'main')?.state?.waiting?.message, 'Container image "local/absent:1" is not present with pull policy of Never');
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(condition(pod, 'Ready'), 'False');
    const events = await waitForEvents(node, 'noimage', ['ErrImageNeverPull']);
    assert.ok(events.some((e) => e.startsWith('Warning ErrImageNeverPull: Container image "local/absent:1"')), events.join('\n'));
  });

  it('runs startup (exec), readiness (exec, tcpSocket) and liveness (httpGet) probes for real', async () => {
    const web = busybox('web', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www', {
      ports: [{ name: 'http', containerPort: 8080 }],
      readinessProbe: { tcpSocket: { port: 'http' }, periodSeconds: 1 },
      livenessProbe: { httpGet: { path: '/index.html', port: 8080 }, periodSeconds: 1, failureThreshold: 2 },
    });
    const gate = busybox('gate', 'sleep 3600', {
      startupProbe: { exec: { command: ['cat', '/tmp/started'] }, periodSeconds: 1, failureThreshold: 600 },
      readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
    });
    await createPod(node, podOn(node, 'probed', [web, gate], { restartPolicy: 'Always' }));
    let pod = await waitForPod(node, 'probed', (p) => containerStatus(p, 'web')?.ready === true && p.status?.phase === 'Running', 'web ready');
    assert.equal(containerStatus(pod, 'gate')?.started, false, 'the startup probe fails until /tmp/started exists');
    assert.equal(containerStatus(pod, 'gate')?.ready, false);
    assert.equal(condition(pod, 'Ready'), 'False');

    const gateId = dockerId(containerStatus(pod, 'gate')?.containerID);
    await dockerExec(node.docker, gateId, ['touch', '/tmp/started']);
    pod = await waitForPod(node, 'probed', (p) => containerStatus(p, 'gate')?.started === true, 'gate started');
    assert.equal(containerStatus(pod, 'gate')?.ready, false, 'the exec readiness probe fails until /tmp/ready exists');
    await dockerExec(node.docker, gateId, ['touch', '/tmp/ready']);
    pod = await waitForPod(node, 'probed', isRunningAndReady, 'Ready once the exec probe passes');

    // Liveness: a 404 from httpd fails the httpGet probe; the kubelet kills and restarts the container.
    await dockerExec(node.docker, dockerId(containerStatus(pod, 'web')?.containerID), ['rm', '/www/index.html']);
    pod = await waitForPod(node, 'probed', (p) => (containerStatus(p, 'web')?.restartCount ?? 0) >= 1, 'web restarted by its liveness probe');
    const events = await waitForEvents(node, 'probed', ['Unhealthy', 'Killing']);
    assert.ok(events.includes('Normal Killing: Container web failed liveness probe, will be restarted'), events.join('\n'));
    assert.ok(events.some((e) => e.startsWith('Warning Unhealthy: Liveness probe failed: HTTP probe returned 404')), events.join('\n'));
    await waitForPod(node, 'probed', isRunningAndReady, 'Ready again after the restart');
  });

  it('stop() removes its containers, the pods bound to it and its Node', async () => {
    const other = new NodeAgent({ kubeConfig: kube.kubeConfig, docker: node.docker });
    await other.start();
    let stopped = false;
    try {
      await node.core.createNamespacedPod({
        namespace: node.namespace,
        body: {
          metadata: { name: 'on-other' },
          spec: { nodeSelector: other.nodeSelector, containers: [busybox('main', 'sleep 3600')] },
        },
      });
      await waitForPod(node, 'on-other', isRunningAndReady, 'Running on the second node');
      await other.stop();
      stopped = true;
      await assert.rejects(node.core.readNode({ name: other.name }), (error: unknown) => isNotFound(error));
      await assert.rejects(node.core.readNamespacedPod({ name: 'on-other', namespace: node.namespace }), (error: unknown) => isNotFound(error));
      const left = await node.docker.listContainers({ all: true, filters: { label: [`${AGENT_LABEL}=${other.name}`] } });
      assert.deepEqual(left, []);
    } finally {
      if (!stopped) await other.stop();
    }
  });
});
