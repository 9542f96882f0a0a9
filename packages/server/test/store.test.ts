import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/store/sqlite.js';
import { storeContract } from './store.contract.js';

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
