import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { WorkerManagerError } from '@worker-manager/plugin-sdk';
import { loadStreamsFile, parseStreamsFile } from '../../../../../host/src/bus/adapters/jetstream/streamDefinitions.ts';
import { DEFAULT_STREAMS_FILE } from '../../../../../host/src/bus/createEventBus.ts';
import { SUBJECT_STEMS, subjectMatches, subjectsFor, subjectsIntersect } from '../../../../../host/src/bus/subjects.ts';
import { repoRoot } from '../../../../helpers/startTestHost.ts';

describe('JetStream stream definitions', () => {
  it('ships config/jetstream/streams.yaml: event streams hold every catalog subject and dead letters, commands and audit heads have their own', async () => {
    assert.equal(DEFAULT_STREAMS_FILE, path.join(repoRoot, 'config/jetstream/streams.yaml'));
    const defs = await loadStreamsFile(DEFAULT_STREAMS_FILE, 'acme.ci');
    assert.deepEqual(defs.streams.map((s) => [s.name, s.role]), [
      ['WM_ACME_CI_EVENTS', 'events'],
      ['WM_ACME_CI_DEAD_LETTER', 'deadLetters'],
      ['WM_ACME_CI_COMMANDS', 'commands'],
      ['WM_ACME_CI_COMMAND_RESULTS', 'commandResults'],
      ['WM_ACME_CI_AUDIT_ANCHOR', 'auditAnchor'],
    ]);
    const all = defs.streams.filter((s) => s.role === 'events' || s.role === 'deadLetters').flatMap((s) => s.subjects);
    const subjects = subjectsFor('acme.ci');
    for (const name of Object.keys(SUBJECT_STEMS) as Array<keyof typeof SUBJECT_STEMS>) {
      assert.ok(all.some((p) => subjectMatches(p, subjects.of(name))), name);
    }
    assert.ok(all.some((p) => subjectMatches(p, subjects.deadLetter('audit'))));
    assert.ok(!all.some((p) => subjectMatches(p, subjects.command('create'))), 'commands must not be captured by an event stream');
    const commands = defs.streams[2];
    assert.equal(commands?.retention, 'workqueue');
    assert.ok(commands?.subjects.some((p) => subjectMatches(p, subjects.command('create'))));
    // No two streams may share a subject: nats-server refuses overlapping streams.
    const every = defs.streams.flatMap((s) => s.subjects.map((p) => [s.name, p] as const));
    for (const [n1, p1] of every) for (const [n2, p2] of every) if (n1 !== n2) assert.ok(!subjectsIntersect(p1, p2), `${p1} (${n1}) overlaps ${p2} (${n2})`);
    const anchor = defs.streams[4];
    assert.ok(anchor?.subjects.some((p) => subjectMatches(p, subjects.auditHead('host-1'))));
    assert.ok(!all.some((p) => subjectMatches(p, subjects.auditHead('host-1'))), 'audit heads are not in the events stream');
    assert.deepEqual([anchor?.denyDelete, anchor?.denyPurge, anchor?.retention, anchor?.maxAgeMs], [true, true, 'limits', 0]);
    const events = defs.streams[0];
    assert.equal(events?.retention, 'limits');
    assert.equal(events?.duplicateWindowMs, 120_000);
    assert.equal(defs.consumers.maxAckPending, 1);
  });

  it('applies defaults and refuses an unknown field or a bad value, naming it', () => {
    const ok = parseStreamsFile('streams:\n  - name: S\n    subjects: ["{prefix}.x"]\n', 'f.yaml', 'p');
    assert.equal(ok.streams[0]?.duplicateWindowMs, 120_000);
    assert.equal(ok.streams[0]?.storage, 'file');
    assert.deepEqual(ok.streams[0]?.subjects, ['p.x']);
    assert.equal(ok.consumers.maxDeliver, 5);
    assert.throws(() => parseStreamsFile('streams:\n  - name: S\n    subjects: [a]\n    retention: forever\n', 'f.yaml', 'p'), (err: unknown) => {
      assert.ok(err instanceof WorkerManagerError);
      assert.equal(err.code, 'HOST_ERR_CONFIG_INVALID');
      assert.match(err.message, /\/streams\/0\/retention/);
      return true;
    });
    assert.throws(() => parseStreamsFile('streams:\n  - name: S\n    subjects: [a]\n    replica: 3\n', 'f.yaml', 'p'), { code: 'HOST_ERR_CONFIG_INVALID' });
    assert.throws(() => parseStreamsFile('streams:\n  - {name: S, subjects: [a]}\n  - {name: S, subjects: [b]}\n', 'f.yaml', 'p'), /defined twice/);
    assert.throws(() => parseStreamsFile('streams: [', 'f.yaml', 'p'), { code: 'HOST_ERR_CONFIG_PARSE' });
    assert.throws(() => parseStreamsFile('streams:\n  - {name: A, subjects: [a], role: commands}\n  - {name: B, subjects: [b], role: commands}\n', 'f.yaml', 'p'), /more than one stream with role commands/);
  });
});
