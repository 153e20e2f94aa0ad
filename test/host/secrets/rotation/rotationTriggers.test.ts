import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createEvent } from '../../../../host/src/bus/createEvent.ts';
import { waitFor } from '../../../helpers/waitFor.ts';
import { rotationDir, simpleCredentials, startRotationHost } from './rotationHost.ts';

describe('RotationEngine triggers', () => {
  it('time: an interval policy rotates on its own, again and again, and stops with the host', { timeout: 20_000 }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, `
secrets:
  rotation:
    policies: [{ secret: tick, interval: 400ms, jitterMs: 50, gracePeriodMs: 0 }]
${simpleCredentials()}`);
    let stopped = false;
    t.after(() => (stopped ? undefined : h.stop()));
    // The policy is armed at start; the secret appears afterwards and is picked up on the retry.
    await h.creds().putSecret({ name: 'tick', value: 'v' });
    const done = await waitFor(() => {
      const time = h.host.rotation.history('tick').filter((r) => r.trigger === 'time' && r.state === 'completed');
      return time.length >= 2 && time;
    }, 'two time-triggered rotations', 8_000);
    assert.ok(done.every((r) => r.requester === 'host:rot'));
    await h.stop();
    stopped = true;
    const count = h.host.rotation.history('tick').length;
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(h.host.rotation.history('tick').length, count, 'no rotation after stop');
  });

  it('event: a burst of matching events causes one rotation; the engine\'s own events never trigger one', { timeout: 20_000 }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, `
secrets:
  rotation:
    debounceMs: 200
    policies: [{ secret: api, onEvents: [ci.security.auth.denied, ci.secret.>], gracePeriodMs: 0 }]
${simpleCredentials()}`);
    t.after(() => h.stop());
    await h.creds().putSecret({ name: 'api', value: 'v' });
    const denied = () => createEvent(h.host.subjects, 'test', 'authDenied', { principal: 'mallory', action: 'secret:read' }, { correlationId: 'burst' });
    await Promise.all([h.host.bus.publish(denied()), h.host.bus.publish(denied()), h.host.bus.publish(denied())]);
    const first = await waitFor(() => h.host.rotation.history('api').find((r) => r.state === 'completed'), 'the event-triggered rotation');
    assert.equal(first.trigger, 'event');
    // Its own ci.secret.rotated matched ci.secret.> but must not start another rotation.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(h.host.rotation.history('api').length, 1, JSON.stringify(h.host.rotation.history('api')));
    assert.ok(h.events.some((e) => e.busSubject === 'ci.secret.rotated' && e.correlationid === 'burst'));

    await h.host.bus.publish(denied());
    await waitFor(() => h.host.rotation.history('api').filter((r) => r.state === 'completed').length === 2, 'a second rotation for a later event');
    assert.deepEqual((await h.host.rotation.listVersions({ name: 'api' })).map((v) => [v.version, v.status]), [['1', 'revoked'], ['2', 'revoked'], ['3', 'active']]);
  });

  it('a grace-period revocation survives a host restart and happens on time', { timeout: 20_000 }, async (t) => {
    const dir = await rotationDir(t);
    const first = await startRotationHost(dir, `secrets: { rotation: { defaultGracePeriodMs: 3000 } }\n${simpleCredentials()}`);
    await first.creds().putSecret({ name: 'db', value: 'v' });
    const record = await first.host.rotation.rotate({ name: 'db', requester: 'alice' });
    const revokeAt = Date.now() + 3000;
    await first.stop();

    const second = await startRotationHost(dir, `secrets: { rotation: { defaultGracePeriodMs: 3000 } }\n${simpleCredentials()}`);
    t.after(() => second.stop());
    const resumed = second.host.rotation.history('db').find((r) => r.id === record.id);
    assert.equal(resumed?.step, 'grace');
    if (Date.now() < revokeAt - 300) assert.equal((await second.host.rotation.listVersions({ name: 'db' }))[0]?.status, 'deprecated');
    await waitFor(() => second.host.rotation.history('db').find((r) => r.id === record.id && r.state === 'completed'), 'the revocation after restart', 8_000);
    assert.ok(Date.now() >= revokeAt - 50, 'not revoked before the grace period ended');
    assert.deepEqual((await second.host.rotation.listVersions({ name: 'db' })).map((v) => [v.version, v.status]), [['1', 'revoked'], ['2', 'active']]);
  });
});
