/** docs/architecture.md is held to the code: every path it names exists, every unit of the server is in it. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const src = `${root}packages/server/src/`;
const doc = readFileSync(`${root}docs/architecture.md`, 'utf8');

/** Backticked names that look like paths: `hub/feed.ts`, `store/`, `packages/web`. */
const named = [...doc.matchAll(/`([A-Za-z0-9_./-]+(?:\.ts|\/))`|`(packages\/[a-z]+[A-Za-z0-9_./-]*)`/g)].map((m) => m[1] ?? m[2] ?? '');

test('every path docs/architecture.md names exists', () => {
  assert.ok(named.length > 20, `the document names the units (${named.length} paths)`);
  for (const p of named) {
    const where = p.startsWith('packages/') ? `${root}${p}` : `${src}${p}`;
    assert.ok(existsSync(where), `${p} exists (${where})`);
  }
});

test('every file and folder of the server is in docs/architecture.md', () => {
  const units = readdirSync(src, { withFileTypes: true })
    .filter((e) => e.name !== 'index.ts')
    .map((e) => (e.isDirectory() ? `${e.name}/` : e.name));
  for (const u of units) assert.ok(named.includes(u), `docs/architecture.md names ${u}`);
  const hub = readdirSync(`${src}hub`).filter((f) => f.endsWith('.ts') && f !== 'index.ts');
  for (const f of hub) assert.ok(named.includes(`hub/${f}`), `docs/architecture.md names hub/${f}`);
});
