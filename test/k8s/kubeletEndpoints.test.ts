import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Exec, Log, PortForward, type V1Status } from '@kubernetes/client-node';
import { requireDocker } from '../helpers/requireDocker.ts';
import { requireKube } from '../helpers/requireKube.ts';
import { budget, waitFor, within } from '../helpers/waitFor.ts';
import { busybox, containerStatus, createPod, isRunningAndReady, podOn, startTestNode, waitForPod, type TestNode } from './testCluster.ts';

const kube = await requireKube();
const dockerSkip = await requireDocker();

/** A Writable that keeps what it receives, for the streams client-node writes into. */
class Collector extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    done();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/**
 * The kubelet endpoints kube-apiserver proxies to (logs, exec, port-forward), driven through client-node against the
 * real apiserver: the requests travel client -> apiserver -> (client certificate) -> the agent's HTTPS server.
 */
describe('test node agent: kubelet endpoints through kube-apiserver', { skip: kube.skip || dockerSkip, timeout: budget(600_000) }, () => {
  let node: TestNode;

  before(async () => {
    node = await startTestNode(kube.kubeConfig, 'wm-kubelet');
    const script = 'for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done';
    const web = busybox('web', 'mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www', {
      readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
    });
    await createPod(node, podOn(node, 'talker', [busybox('main', script), web]));
    await waitForPod(node, 'talker', isRunningAndReady, 'Running and Ready');
  });
  after(async () => {
    await node?.close();
  });

  const readLog = (options: { tailLines?: number; timestamps?: boolean; container?: string; limitBytes?: number } = {}): Promise<string> =>
    node.core.readNamespacedPodLog({ name: 'talker', namespace: node.namespace, container: options.container ?? 'main', ...options });

  it('serves containerLogs: stdout and stderr, tailLines, timestamps, limitBytes', async () => {
    // Once `tick 2` is out, the last line is a tick line whatever the interleaving of stderr.
    const all = await waitFor(async () => {
      const text = await readLog();
      return text.includes('tick 2\n') ? text : undefined;
    }, 'the second tick in the log', 30_000, 250);
    // Docker reads stdout and stderr through separate pipes: their relative order is not kept (nor by the kubelet).
    assert.ok(all.replace('oops\n', '').startsWith('line 1\nline 2\nline 3\nline 4\nline 5\ntick 1\n'), all);
    assert.match(all, /^oops$/m);
    const tail = await readLog({ tailLines: 1 });
    assert.match(tail, /^tick \d+\n$/);
    const stamped = await readLog({ timestamps: true });
    assert.match(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 1$/m);
    assert.ok(stamped.split('\n').filter((line) => line !== '').every((line) => /^\S+Z /.test(line)), 'every line is stamped');
    assert.equal((await readLog({ limitBytes: 9 })).length, 9);
  });

  it('follows logs: lines written after the request arrive on the open stream', async () => {
    const out = new Collector();
    const controller = await new Log(kube.kubeConfig).log(node.namespace, 'talker', 'main', out, { follow: true, tailLines: 1 });
    try {
      const first = await waitFor(() => /tick (\d+)/.exec(out.text)?.[1], 'the first followed line', 30_000);
      await waitFor(() => out.text.includes(`tick ${Number(first) + 2}\n`), 'two more lines on the same stream', 30_000);
    } finally {
      controller.abort();
    }
  });

  it('answers logs of a container that has not started with the kubelet\'s "waiting to start" error', async () => {
    await createPod(node, podOn(node, 'waiting', [{ name: 'main', image: 'local/absent:1', imagePullPolicy: 'Never' }]));
    await waitForPod(node, 'waiting', (p) => containerStatus(p, 'main')?.state?.waiting?.reason === 'ErrImageNeverPull', 'ErrImageNeverPull');
    await assert.rejects(node.core.readNamespacedPodLog({ name: 'waiting', namespace: node.namespace }), (error: { code?: number; body?: string }) => {
      assert.equal(error.code, 400);
      assert.match(String(error.body), /is waiting to start: ErrImageNeverPull/);
      return true;
    });
  });

  it('serves the previous container\'s logs after a restart (previous=true)', async () => {
    await createPod(node, podOn(node, 'restarter', [busybox('main', 'echo attempt; exit 1')], { restartPolicy: 'Always' }));
    await waitForPod(node, 'restarter', (p) => (containerStatus(p, 'main')?.restartCount ?? 0) >= 1, 'a restart');
    const previous = await node.core.readNamespacedPodLog({ name: 'restarter', namespace: node.namespace, previous: true });
    assert.equal(previous, 'attempt\n');
  });

  it('execs over the v4 channel protocol: stdout, stderr and the exit code in the status channel', async () => {
    const stdout = new Collector();
    const stderr = new Collector();
    const status = new Promise<V1Status>((resolve) => {
      void new Exec(kube.kubeConfig).exec(node.namespace, 'talker', 'main', ['sh', '-c', 'echo out; echo err >&2; exit 3'], stdout, stderr, null, false, resolve);
    });
    const result = await within(status, 'the exec status');
    assert.equal(result.status, 'Failure');
    assert.equal(result.reason, 'NonZeroExitCode');
    assert.deepEqual(result.details?.causes, [{ reason: 'ExitCode', message: '3' }]);
    assert.equal(stdout.text, 'out\n');
    assert.equal(stderr.text, 'err\n');

    const ok = new Promise<V1Status>((resolve) => {
      void new Exec(kube.kubeConfig).exec(node.namespace, 'talker', 'main', ['true'], null, null, null, false, resolve);
    });
    assert.equal((await within(ok, 'the exec status of `true`')).status, 'Success');
  });

  it('execs with stdin', async () => {
    const stdin = new PassThrough();
    const stdout = new Collector();
    const status = new Promise<V1Status>((resolve) => {
      void new Exec(kube.kubeConfig).exec(node.namespace, 'talker', 'main', ['head', '-c', '5'], stdout, null, stdin, false, resolve);
    });
    stdin.write('hello, world');
    assert.equal((await within(status, 'the exec status')).status, 'Success');
    assert.equal(stdout.text, 'hello');
    stdin.end();
  });

  it('port-forwards to a container port: the first frame carries the port, data flows both ways', async () => {
    const input = new PassThrough();
    const output = new Collector();
    const errors = new Collector();
    const ws = await new PortForward(kube.kubeConfig).portForward(node.namespace, 'talker', [8080], output, errors, input);
    try {
      input.write('GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n');
      await waitFor(() => /^HTTP\/1\.[01] 200[\s\S]*\r\n\r\nserved\n$/.test(output.text), () => `the HTTP response through the tunnel (got ${JSON.stringify(output.text)})`, 30_000);
      assert.equal(errors.text, '');
    } finally {
      if (typeof ws !== 'function') ws.close();
    }
  });

  it('port-forward reports a closed port on the error channel', async () => {
    const input = new PassThrough();
    const output = new Collector();
    const errors = new Collector();
    const ws = await new PortForward(kube.kubeConfig, false).portForward(node.namespace, 'talker', [9], output, errors, input);
    try {
      await waitFor(() => errors.text.includes('error forwarding port 9'), () => `an error on the error channel (got ${JSON.stringify(errors.text)})`, 30_000);
    } finally {
      if (typeof ws !== 'function') ws.close();
    }
  });
});
