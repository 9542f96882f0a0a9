import { mkdtempSync, rmSync } from 'node:fs';
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
