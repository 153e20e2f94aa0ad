import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RotationJournal } from '../../../../host/src/secrets/rotation/RotationJournal.ts';
import type { JournalEntry } from '../../../../host/src/secrets/rotation/RotationRecord.ts';
import { rotationDir } from './rotationHost.ts';

const entry = (id: string, finished: boolean): JournalEntry => ({
  id, operation: 'rotate', credentials: 'vault', name: 'db', trigger: 'manual', requester: 'alice', state: finished ? 'completed' : 'in_progress',
  startedAt: new Date(0).toISOString(), startedAtMs: 0, workers: [], gracePeriodMs: 0, ...(finished ? { finishedAt: new Date(1).toISOString() } : { step: 'create' }),
});

describe('RotationJournal', () => {
  it('persists atomically, shares writes requested together, trims finished history but keeps unfinished entries', async (t) => {
    const dir = await rotationDir(t);
    const journal = new RotationJournal(dir, 10);
    assert.deepEqual(await journal.load(), []);
    for (let i = 0; i < 12; i++) journal.add(entry(`done-${i}`, true));
    journal.add(entry('open', false));
    const saves = await Promise.all([journal.save(), journal.save(), journal.save()]);
    assert.equal(saves.length, 3);
    const again = new RotationJournal(dir, 10);
    const loaded = await again.load();
    assert.deepEqual(loaded.map((e) => e.id), [...Array.from({ length: 10 }, (_, i) => `done-${i + 2}`), 'open']);
    assert.deepEqual((await readdir(dir)).sort(), ['journal.json']);
    assert.equal(((await import('node:fs')).statSync(path.join(dir, 'journal.json')).mode & 0o777), 0o600);
  });

  it('keeps a finished entry that still owes an event past the history limit, until it is paid', async (t) => {
    const dir = await rotationDir(t);
    const journal = new RotationJournal(dir, 2);
    await journal.load();
    const owing: JournalEntry = { ...entry('owing', true), outbox: [{ event: 'secretRotated' }] };
    journal.add(owing);
    for (let i = 0; i < 4; i++) journal.add(entry(`done-${i}`, true));
    await journal.save();
    assert.deepEqual((await new RotationJournal(dir, 2).load()).map((e) => e.id), ['owing', 'done-2', 'done-3']);
    delete owing.outbox;
    await journal.save();
    assert.deepEqual((await new RotationJournal(dir, 2).load()).map((e) => e.id), ['done-2', 'done-3']);
  });

  it('keeps failed-version marks across loads, reads a journal written before them, and trims only revoked marks', async (t) => {
    const dir = await rotationDir(t);
    // A journal from before failure marks existed: no `failedVersions` field.
    await writeFile(path.join(dir, 'journal.json'), JSON.stringify({ format: 1, entries: [entry('old', true)] }));
    const journal = new RotationJournal(dir, 10);
    assert.deepEqual((await journal.load()).map((e) => e.id), ['old']);
    assert.deepEqual(journal.failedVersions(), []);
    const mark = (version: string, revoked: boolean) => ({ credentials: 'vault', name: 'db', version, rotationId: `rot-${version}`, step: 'test', code: 'WM_ERR_ROTATION_FAILED', failedAt: new Date(0).toISOString(), ...(revoked ? { revoked } : {}) });
    journal.markFailed(mark('0', false));
    for (let i = 1; i <= 12; i++) journal.markFailed(mark(String(i), true));
    journal.markFailed(mark('3', false));
    await journal.save();
    const again = new RotationJournal(dir, 10);
    await again.load();
    // The unrevoked mark stays however old; of the revoked ones, the newest historyLimit stay; a version is marked once.
    assert.deepEqual(again.failedVersions().map((f) => f.version), ['0', ...Array.from({ length: 10 }, (_, i) => String(i + 3))]);
    assert.equal(again.failedVersion('vault', 'db', '0')?.rotationId, 'rot-0');
    assert.equal(again.failedVersion('vault', 'db', '1'), undefined);
    assert.equal(again.failedVersion('other', 'db', '0'), undefined);
  });

  it('a damaged journal refuses to load (never read as empty); a leftover temp file is ignored and removed', async (t) => {
    const dir = await rotationDir(t);
    const journal = new RotationJournal(dir, 10);
    await journal.load();
    journal.add(entry('open', false));
    await journal.save();
    await writeFile(path.join(dir, '.journal.json.deadbeef.tmp'), '{"half": ');
    assert.deepEqual((await new RotationJournal(dir, 10).load()).map((e) => e.id), ['open']);
    assert.deepEqual((await readdir(dir)).sort(), ['journal.json']);

    const good = await readFile(path.join(dir, 'journal.json'), 'utf8');
    await writeFile(path.join(dir, 'journal.json'), good.slice(0, good.length - 3));
    await assert.rejects(new RotationJournal(dir, 10).load(), (e: { code?: string }) => e.code === 'HOST_ERR_ROTATION_JOURNAL_CORRUPT');
    await writeFile(path.join(dir, 'journal.json'), JSON.stringify({ format: 1, entries: [{ id: 'x' }] }));
    await assert.rejects(new RotationJournal(dir, 10).load(), (e: { code?: string; message?: string }) => e.code === 'HOST_ERR_ROTATION_JOURNAL_CORRUPT' && /damaged/.test(e.message ?? ''));
  });
});
