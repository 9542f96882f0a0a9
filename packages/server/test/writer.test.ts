/** The MessageWriter batches: everything accepted in one event-loop turn is one store call. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { SqliteStore } from '../src/store/sqlite.js';
import type { NewMessage } from '../src/store/store.js';
import { MessageWriter } from '../src/writer.js';

test('one transaction per turn, stored before onStored, in submit order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-writer-'));
  const store = new SqliteStore(join(dir, 'parley.db'));
  await store.init();
  try {
    const batches: number[] = [];
    const append = store.appendMessages.bind(store);
    store.appendMessages = (batch: readonly NewMessage[]) => {
      batches.push(batch.length);
      return append(batch);
    };
    const handed: ChatMessage[] = [];
    const writer = new MessageWriter(store, (ms) => {
      handed.push(...ms);
    });
    const msg = (i: number): NewMessage => ({ room: 'w', from: 'a', message: `m${i}`, sent: new Date().toISOString() });
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => writer.submit(msg(i))));
    assert.deepEqual(batches, [50], 'fifty submits in one turn: one store call');
    assert.deepEqual(first.map((a) => a.message.seq), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.deepEqual(handed.map((m) => m.message), Array.from({ length: 50 }, (_, i) => `m${i}`));
    // Stored before being handed on: the store has every message onStored saw.
    assert.equal(await store.lastSeq('w'), 50);
    await writer.submit(msg(50));
    assert.deepEqual(batches, [50, 1], 'a later turn is its own transaction');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
