import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { storeContract } from './store.contract.js';
import { dropSchema, freshSchema, PG_URL } from './pg.js';

storeContract('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-store-'));
  const file = join(dir, 'parley.db');
  const open = async () => {
    const s = new SqliteStore(file);
    await s.init();
    return s;
  };
  return { open, reopen: open, destroy: async () => rmSync(dir, { recursive: true, force: true }) };
});

storeContract('postgres', async () => {
  const schema = freshSchema();
  const open = async () => {
    const s = new PostgresStore({ url: PG_URL, schema, poolSize: 4 });
    await s.init();
    return s;
  };
  return { open, reopen: open, destroy: () => dropSchema(schema) };
});

test('sqlite: a worker thread checkpoints the write-ahead log, not the writer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-ckpt-'));
  const file = join(dir, 'parley.db');
  const store = new SqliteStore(file);
  await store.init();
  try {
    const before = statSync(file).size;
    // Far fewer WAL pages than the writer's own auto-checkpoint size (10,000): only the
    // checkpointer can move them into the database file.
    for (let i = 0; i < 20; i++) {
      await store.appendMessages(Array.from({ length: 50 }, (_, k) => ({ room: `ckpt${k}`, from: 'u', message: 'x'.repeat(200), sent: new Date().toISOString(), ref: undefined })));
    }
    const walPages = statSync(`${file}-wal`).size / 4096;
    assert.ok(walPages > 10 && walPages < 10_000, `WAL holds ${walPages} pages`);
    const deadline = Date.now() + 5_000;
    while (statSync(file).size === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(statSync(file).size > before, 'the database file grew: the log was checkpointed');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
