import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { EventBus } from '../../../../host/src/bus/EventBus.ts';
import type { EventEnvelope } from '../../../../host/src/bus/EventEnvelope.ts';
import { createEvent } from '../../../../host/src/bus/createEvent.ts';
import { MemoryEventBus } from '../../../../host/src/bus/MemoryEventBus.ts';
import { budget, waitFor } from '../../../helpers/waitFor.ts';
import { faultyCredentials, rotationDir, simpleCredentials, startRotationHost } from './rotationHost.ts';

const VALUE = 'rotation-plaintext-7c1d0e';
// A grace period the test looks inside (the old version still readable, the rotation still revocable): seconds, so
// a loaded machine does not end it before the test has looked.
const GRACE_MS = budget(5_000);

const rotation = (grace: number, extra = ''): string => `
secrets:
  rotation:
    defaultGracePeriodMs: ${grace}
${extra}`;

describe('RotationEngine with credentials-simple in a real host', () => {
  it('rotates: new version active, old one deprecated and readable during grace, then revoked; audited and published', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(GRACE_MS) + simpleCredentials());
    t.after(() => h.stop());
    const creds = h.creds();
    await creds.putSecret({ name: 'db', value: VALUE });

    const record = await h.host.rotation.rotate({ name: 'db', requester: 'alice', correlationId: 'corr-1' });
    assert.equal(record.state, 'in_progress');
    assert.equal(record.step, 'grace');
    assert.equal(record.credentials, 'vault');
    assert.equal(record.trigger, 'manual');
    assert.equal(record.previousVersion, '1');
    assert.equal(record.newVersion, '2');
    assert.ok((record.latencyMs ?? -1) >= 0);

    // Dual release: the new version is current, the old one still readable.
    const during = await h.host.rotation.listVersions({ name: 'db' });
    assert.deepEqual(during.map((v) => [v.version, v.status, v.stages]), [['1', 'deprecated', ['previous']], ['2', 'active', ['current']]]);
    assert.equal((await creds.getSecret({ name: 'db', version: '1' })).value, VALUE);
    assert.equal((await creds.getSecret({ name: 'db' })).version, '2');

    // The record turns completed just before its audit entry is written: wait for both.
    const audited = (): boolean => h.audit.entries.some((e) => e.details?.['rotationId'] === record.id && e.details?.['state'] === 'completed');
    const done = await waitFor(() => (audited() ? h.host.rotation.history('db').find((r) => r.id === record.id && r.state === 'completed') : undefined), 'rotation to complete after grace', GRACE_MS + 20_000);
    assert.equal(done.step, 'revoke');
    assert.ok(done.finishedAt !== undefined);
    const after = await h.host.rotation.listVersions({ name: 'db' });
    assert.deepEqual(after.map((v) => [v.version, v.status]), [['1', 'revoked'], ['2', 'active']]);
    await assert.rejects(creds.getSecret({ name: 'db', version: '1' }), (e: { code?: string }) => e.code === 'WM_ERR_SECRET_VERSION_NOT_FOUND');

    // Published once, with names and versions only.
    const rotated = h.events.filter((e) => e.busSubject === 'ci.secret.rotated');
    assert.equal(rotated.length, 1);
    assert.equal(rotated[0]?.correlationid, 'corr-1');
    assert.deepEqual(
      { ...(rotated[0]?.data as Record<string, unknown>), rotationId: undefined },
      { secret: 'db', credentials: 'vault', rotationId: undefined, operation: 'rotate', trigger: 'manual', state: 'in_progress', previousVersion: '1', newVersion: '2', workers: [] },
    );

    // Every transition audited, in order, with requester, provider, versions and result.
    const trail = h.audit.entries.filter((e) => e.details?.['rotationId'] === record.id);
    assert.deepEqual(trail.map((e) => `${String(e.details?.['state'])}/${String(e.details?.['step'])}`), [
      'pending/null', 'in_progress/create', 'in_progress/test', 'in_progress/promote', 'in_progress/distribute', 'in_progress/grace', 'in_progress/revoke', 'completed/revoke',
    ]);
    for (const e of trail) {
      assert.equal(e.kind, 'secret.rotation');
      assert.equal(e.action, 'secret:rotate');
      assert.equal(e.resource, 'Secret::vault/db');
      assert.equal(e.principal.id, 'alice');
      assert.equal(e.result, 'ok');
      assert.equal(e.correlationId, 'corr-1');
      assert.equal(e.details?.['provider'], 'vault');
      assert.equal(e.details?.['plugin'], 'credentials-simple');
    }
    assert.equal(trail.at(-1)?.details?.['previousVersion'], '1');
    assert.equal(trail.at(-1)?.details?.['newVersion'], '2');

    // The observer (metrics) counted one successful rotation.
    assert.match(await h.host.metrics.render(), /rotation_success_total\{provider="vault",strategy="manual"\} 1/);

    // Nothing the host emitted carries the value.
    const emitted = JSON.stringify([h.events, h.audit.entries, h.logs, h.host.rotation.history()]);
    assert.equal(emitted.includes(VALUE), false);
  });

  it('rolls back by hand: the previous version is current again and the undone one is revoked after grace', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(60_000, `    policies: [{ secret: db, gracePeriodMs: ${GRACE_MS} }]`) + simpleCredentials());
    t.after(() => h.stop());
    await h.creds().putSecret({ name: 'db', value: VALUE });
    const rotated = await h.host.rotation.rotate({ name: 'db', requester: 'alice' });
    assert.equal(rotated.newVersion, '2');

    const rb = await h.host.rotation.rollback({ name: 'db', requester: 'bob' });
    assert.equal(rb.state, 'rollback');
    assert.equal(rb.previousVersion, '2');
    assert.equal(rb.newVersion, '1');
    const versions = await h.host.rotation.listVersions({ name: 'db' });
    assert.deepEqual(versions.map((v) => [v.version, v.status, v.stages]), [['1', 'active', ['current']], ['2', 'deprecated', ['previous']]]);
    assert.equal((await h.creds().getSecret({ name: 'db' })).value, VALUE);
    // The rotation waiting to revoke version 1 was reverted, so version 1 is never revoked.
    assert.equal(h.host.rotation.history('db').find((r) => r.id === rotated.id)?.state, 'rollback');

    await waitFor(() => h.host.rotation.history('db').find((r) => r.id === rb.id && r.state === 'completed'), 'rollback to complete after grace', GRACE_MS + 20_000);
    assert.deepEqual((await h.host.rotation.listVersions({ name: 'db' })).map((v) => [v.version, v.status]), [['1', 'active'], ['2', 'revoked']]);
    assert.ok(h.audit.entries.some((e) => e.kind === 'secret.rollback' && e.principal.id === 'bob' && e.details?.['rotationId'] === rb.id));
    assert.ok(h.events.some((e) => e.busSubject === 'ci.secret.rotated' && (e.data as { operation?: string }).operation === 'rollback'));
    assert.match(await h.host.metrics.render(), /rotation_success_total\{provider="vault",strategy="manual"\} 1/);

    // Nothing left to roll back to once the previous version is revoked.
    await assert.rejects(h.host.rotation.rollback({ name: 'db', requester: 'bob' }), (e: { code?: string }) => e.code === 'WM_ERR_CONFLICT');
  });

  it('refuses an unknown secret without a record, and works only while started', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(100) + simpleCredentials());
    await assert.rejects(h.host.rotation.rotate({ name: 'missing', requester: 'alice' }), (e: { code?: string }) => e.code === 'WM_ERR_SECRET_NOT_FOUND');
    await assert.rejects(h.host.rotation.rotate({ name: 'db', credentials: 'nope', requester: 'alice' }), (e: { code?: string }) => e.code === 'HOST_ERR_INSTANCE_NOT_FOUND');
    assert.deepEqual(h.host.rotation.history(), []);
    await h.stop();
    await assert.rejects(h.host.rotation.rotate({ name: 'db', requester: 'alice' }), (e: { code?: string }) => e.code === 'HOST_ERR_ROTATION_STOPPED');
  });
});

describe('RotationEngine failures roll back', () => {
  it('a failing testVersion ends failed, with its own rollback record: no pending version, old one still current', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(100) + faultyCredentials());
    t.after(() => h.stop());
    await h.creds().putSecret({ name: 'api', value: VALUE });
    await writeFile(path.join(dir, 'faults.json'), JSON.stringify({ failAt: 'test' }));

    const record = await h.host.rotation.rotate({ name: 'api', requester: 'alice', correlationId: 'corr-f' });
    assert.equal(record.state, 'failed');
    assert.equal(record.step, 'test');
    assert.equal(record.error?.code, 'WM_ERR_ROTATION_FAILED');
    assert.equal(record.newVersion, '2');

    const rb = await waitFor(() => h.host.rotation.history('api').find((r) => r.id !== record.id && r.state === 'completed'), 'the rollback record');
    assert.equal(rb.previousVersion, '2');
    assert.equal(rb.newVersion, '1');
    assert.deepEqual((await h.host.rotation.listVersions({ name: 'api' })).map((v) => [v.version, v.status, v.stages]), [['1', 'active', ['current']], ['2', 'revoked', []]]);

    const failed = h.events.filter((e) => e.busSubject === 'ci.secret.rotation_failed');
    assert.equal(failed.length, 1);
    assert.equal((failed[0]?.data as { secret: string }).secret, 'api');
    assert.match((failed[0]?.data as { reason: string }).reason, /^WM_ERR_ROTATION_FAILED: /);
    // The old version never stopped being current, so nothing announces a change.
    assert.equal(h.events.filter((e) => e.busSubject === 'ci.secret.rotated').length, 0);

    const failure = h.audit.entries.find((e) => e.details?.['rotationId'] === record.id && e.result === 'error');
    assert.equal(failure?.details?.['code'], 'WM_ERR_ROTATION_FAILED');
    assert.equal(failure?.details?.['state'], 'failed');
    const rollbackTrail = h.audit.entries.filter((e) => e.details?.['rotationId'] === rb.id);
    assert.deepEqual(rollbackTrail.map((e) => `${String(e.details?.['state'])}/${String(e.details?.['step'])}`), ['rollback/restore', 'rollback/redistribute', 'rollback/revoke-new', 'completed/revoke-new']);
    assert.ok(rollbackTrail.every((e) => e.kind === 'secret.rollback' && e.details?.['rollbackOf'] === record.id));
    const errorLine = (await h.host.metrics.render()).split('\n').find((l) => l.startsWith('provider_operations_errors_total{') && l.includes('operation="rotateSecret"'));
    assert.ok(errorLine?.includes('error_code="WM_ERR_ROTATION_FAILED"') && errorLine.endsWith(' 1'), errorLine);
  });

  it('a failure after promotion restores the previous version and revokes the new one', { timeout: budget(120_000) }, async (t) => {
    const dir = await rotationDir(t);
    const h = await startRotationHost(dir, rotation(100) + faultyCredentials());
    t.after(() => h.stop());
    await h.creds().putSecret({ name: 'api', value: VALUE });
    await writeFile(path.join(dir, 'faults.json'), JSON.stringify({ failAt: 'distribute' }));

    const record = await h.host.rotation.rotate({ name: 'api', requester: 'alice' });
    assert.equal(record.state, 'failed');
    assert.equal(record.step, 'distribute');
    await waitFor(() => h.host.rotation.history('api').find((r) => r.id !== record.id && r.state === 'completed'), 'the rollback record');
    assert.deepEqual((await h.host.rotation.listVersions({ name: 'api' })).map((v) => [v.version, v.status]), [['1', 'active'], ['2', 'revoked']]);
    // The promoted version had been current: its undoing is announced.
    assert.ok(h.events.some((e) => e.busSubject === 'ci.secret.rotated' && (e.data as { operation?: string; newVersion?: string }).operation === 'rollback'));
  });
});

describe('RotationEngine events', () => {
  it('an event the bus refused is kept in the journal and published at the next start, once', { timeout: budget(180_000) }, async (t) => {
    const dir = await rotationDir(t);
    // The bus is down for rotation events only, as a crash between the state change and the publish would leave it.
    const memory = new MemoryEventBus();
    const down: EventBus = {
      adapter: 'memory',
      start: () => memory.start(),
      stop: () => memory.stop(),
      stats: () => memory.stats(),
      subscribe: (pattern, handler, options) => memory.subscribe(pattern, handler, options),
      publish: async (event) => {
        if (event.busSubject.startsWith('ci.secret.')) throw new Error('the bus is unreachable');
        await memory.publish(event);
      },
    };
    const a = await startRotationHost(dir, rotation(0) + simpleCredentials(), { bus: down });
    await a.creds().putSecret({ name: 'db', value: VALUE });
    const record = await a.host.rotation.rotate({ name: 'db', requester: 'alice' });
    await waitFor(() => a.host.rotation.history('db').some((r) => r.id === record.id && r.state === 'completed'), 'the rotation to complete');
    assert.deepEqual(a.events.filter((e) => e.busSubject.startsWith('ci.secret.')), []);
    await a.stop();

    const b = await startRotationHost(dir, rotation(0) + simpleCredentials());
    const rotated = (events: EventEnvelope[]): EventEnvelope[] => events.filter((e) => e.busSubject === 'ci.secret.rotated' && (e.data as { rotationId?: string }).rotationId === record.id);
    await waitFor(() => rotated(b.events).length > 0, 'the owed event');
    const data = rotated(b.events)[0]?.data as Record<string, unknown>;
    assert.deepEqual([data['secret'], data['credentials'], data['previousVersion'], data['newVersion']], ['db', 'vault', '1', '2']);
    await b.stop();
    const c = await startRotationHost(dir, rotation(0) + simpleCredentials());
    // Published and written off: a later start owes nothing. Owed events go out during start, before anything new,
    // so a marker published now reaches the subscriber after any of them would have.
    const marker = createEvent(c.host.subjects, 'test', 'pluginCrashed', { instance: 'marker', plugin: 'p', version: '1.0.0', state: 'crashed' });
    await c.host.bus.publish(marker);
    await waitFor(() => c.events.some((e) => e.id === marker.id), 'the marker event');
    assert.deepEqual(rotated(c.events), []);
    assert.equal(rotated(b.events).length, 1);
    await c.stop();
  });
});
