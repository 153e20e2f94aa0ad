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
