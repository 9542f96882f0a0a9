/** The README's configuration table is checked against the config schema. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONFIG_KEYS, envName, flagName, loadConfig } from '../src/config.js';

const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');

test('every config key is documented in the README with its env var, flag and default', () => {
  const defaults = loadConfig();
  for (const key of CONFIG_KEYS) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
    assert.ok(row, `README has a row for ${key}`);
    assert.ok(row.includes(`\`${envName(key)}\``), `${key}: env ${envName(key)}`);
    assert.ok(row.includes(`\`--${flagName(key)}\``), `${key}: flag --${flagName(key)}`);
    const d = defaults[key];
    if (d !== undefined && !(Array.isArray(d) && d.length === 0)) assert.ok(row.includes(`\`${String(d)}\``), `${key}: default ${String(d)}`);
  }
  const documented = [...readme.matchAll(/^\| `([a-zA-Z]+)` \| `PARLEY_/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), [...CONFIG_KEYS].sort(), 'no stale keys in the README');
});
