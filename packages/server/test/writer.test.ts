/**
 * The MessageWriter batches: everything accepted in one event-loop turn is one store call; a
 * value the store refuses fails only its own message.
 */
import { chat } from '@parley/testing/helpers';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChatMessage } from '@parley/protocol';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { type NewMessage, StoreError } from '../src/store/store.js';
import { MessageWriter } from '../src/writer.js';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';

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

test('one message the store refuses fails only its sender: the rest of its batch is stored, in order (Postgres)', async () => {
  const schema = freshSchema();
  const store = new PostgresStore({ url: PG_URL, schema });
  await store.init();
  try {
    const handed: ChatMessage[] = [];
    const writer = new MessageWriter(store, (ms) => {
      handed.push(...ms);
    });
    // U+0000 is refused by Postgres (validation refuses it before the writer; this is the net
    // under it). Seven messages in one turn, the third and the sixth unstorable.
    const texts = ['a', 'b', 'bad\u0000one', 'c', 'd', '\u0000', 'e'];
    const settled = await Promise.allSettled(texts.map((message, i) => writer.submit({ room: 'iso', from: `u${i}`, message, sent: new Date().toISOString(), ref: `r${i}` })));
    const refused = settled.flatMap((s, i) => (s.status === 'rejected' ? [i] : []));
    assert.deepEqual(refused, [2, 5], 'only the two unstorable messages are refused');
    for (const i of refused) {
      const reason = (settled[i] as PromiseRejectedResult).reason as unknown;
      assert.ok(reason instanceof StoreError && reason.code === 'invalid', `refused as invalid, not unavailable: ${String(reason)}`);
    }
    const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.message.seq] : []));
    assert.deepEqual(ok, [1, 2, 3, 4, 5], 'the others got gap-free seqs in submit order');
    assert.deepEqual(handed.map((m) => m.message), ['a', 'b', 'c', 'd', 'e'], 'and were handed on in that order');
    assert.deepEqual(chat(await store.messagesAfter('iso', 0, 10)).map((m) => m.message), ['a', 'b', 'c', 'd', 'e']);
    // The refused senders' refs were not taken: a corrected retry with the same ref is stored.
    const retry = await writer.submit({ room: 'iso', from: 'u2', message: 'bad one, fixed', sent: new Date().toISOString(), ref: 'r2' });
    assert.equal(retry.duplicate, false);
    assert.equal(retry.message.seq, 6);
  } finally {
    await store.close();
    await dropSchema(schema);
  }
});
