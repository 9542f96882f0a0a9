/**
 * docs/protocol.md is checked against @parley/protocol, the one source of truth: every event,
 * error code and close code must be documented, and every code in the doc's tables must exist.
 *
 * The event lists (event-lists.ts) are typed with `satisfies Record<…EventType, true>`, so adding (or
 * removing) an event in the protocol package makes the tests fail to compile until the list,
 * and then the doc, are updated.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { CloseCodes, ErrorCodes, HttpErrorCodes } from '@parley/protocol';
import { CLIENT_EVENTS, SERVER_EVENTS } from '@parley/testing/event-lists';

/** From packages/server/dist/test/ up to the repository root. */
const DOC_URL = new URL('../../../../docs/protocol.md', import.meta.url);
const doc = readFileSync(DOC_URL, 'utf8');

const clientEvents = Object.keys(CLIENT_EVENTS);
const serverEvents = Object.keys(SERVER_EVENTS);
const errorCodes = Object.keys(ErrorCodes);
const httpErrorCodes = Object.keys(HttpErrorCodes);
const closeCodeNames = Object.keys(CloseCodes);

// ---------------------------------------------------------------------------------------------
// A small Markdown reader: fenced blocks, headings, sections, tables, inline code spans.

/** The doc's lines with fenced code blocks blanked out (so their content is not read as Markdown). */
const proseLines: string[] = (() => {
  let fenced = false;
  return doc.split('\n').map((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return '';
    }
    return fenced ? '' : line;
  });
})();

/** Every inline code span outside fenced blocks, without its backticks. */
const codeSpans = new Set<string>(proseLines.flatMap((line) => [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string)));

/** The lines of the `##` section whose heading matches `heading`, up to the next `##` heading. */
function section(heading: RegExp): string[] {
  const start = proseLines.findIndex((l) => /^## /.test(l) && heading.test(l.slice(3)));
  assert.ok(start >= 0, `docs/protocol.md has a "## " section matching ${heading}`);
  const end = proseLines.findIndex((l, i) => i > start && /^## /.test(l));
  return proseLines.slice(start + 1, end < 0 ? undefined : end);
}

interface Table {
  header: string[];
  rows: string[][];
}

const splitRow = (line: string): string[] =>
  line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());

/** Every pipe table in `lines`. */
function tables(lines: readonly string[]): Table[] {
  const found: Table[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!(lines[i] as string).trimStart().startsWith('|')) continue;
    const block: string[] = [];
    while (i < lines.length && (lines[i] as string).trimStart().startsWith('|')) block.push(lines[i++] as string);
    if (block.length < 2 || !/^\|?\s*:?-{3,}/.test((block[1] as string).trim())) continue;
    found.push({ header: splitRow(block[0] as string), rows: block.slice(2).map(splitRow) });
  }
  return found;
}

/** The single table of a section. */
function onlyTable(lines: readonly string[], what: string): Table {
  const t = tables(lines);
  assert.equal(t.length, 1, `the ${what} section has exactly one table`);
  return t[0] as Table;
}

function column(table: Table, name: string): number {
  const i = table.header.findIndex((h) => h.toLowerCase() === name.toLowerCase());
  assert.ok(i >= 0, `table [${table.header.join(' | ')}] has a "${name}" column`);
  return i;
}

/** The content of a cell that must be exactly one code span, e.g. "`rate_limited`" → "rate_limited". */
function codeCell(cell: string | undefined, where: string): string {
  const m = /^`([^`]+)`$/.exec(cell ?? '');
  assert.ok(m, `${where}: expected a single \`code\` cell, got ${JSON.stringify(cell)}`);
  return m[1] as string;
}

/** Plain text of a cell: HTML entities decoded, Markdown escapes removed. */
const plain = (cell: string): string => cell.replace(/\\([\\`*_|<>])/g, '$1').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** The `### \`name\`` headings of a section. */
function eventHeadings(lines: readonly string[]): string[] {
  return lines.flatMap((l) => {
    const m = /^### `([^`]+)`\s*$/.exec(l);
    return m === null ? [] : [m[1] as string];
  });
}

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

// ---------------------------------------------------------------------------------------------

describe('docs/protocol.md documents every registry entry in backticks', () => {
  const missing = (names: readonly string[]) => names.filter((n) => !codeSpans.has(n));

  test('every ErrorCodes key', () => {
    assert.deepEqual(missing(errorCodes), []);
  });

  test('every HttpErrorCodes key', () => {
    assert.deepEqual(missing(httpErrorCodes), []);
  });

  test('every client → server event type', () => {
    assert.deepEqual(missing(clientEvents), []);
  });

  test('every server → client event type', () => {
    assert.deepEqual(missing(serverEvents), []);
  });

  test('every CloseCodes name and number', () => {
    assert.deepEqual(missing(closeCodeNames), []);
    assert.deepEqual(missing(Object.values(CloseCodes).map(String)), []);
  });
});

describe('docs/protocol.md event sections match the event maps', () => {
  test('"Client → server events" has one ### heading per client event, and no other', () => {
    assert.deepEqual(sorted(eventHeadings(section(/^Client → server events/))), sorted(clientEvents));
  });

  test('"Server → client events" has one ### heading per server event, and no other', () => {
    assert.deepEqual(sorted(eventHeadings(section(/^Server → client events/))), sorted(serverEvents));
  });
});

describe('docs/protocol.md error tables hold exactly the registry codes', () => {
  test('socket error codes table: every ErrorCodes key once, with its default message, no stale code', () => {
    const table = onlyTable(section(/^Socket error codes/), 'socket error codes');
    const code = column(table, 'Code');
    const meaning = column(table, 'Meaning');
    const documented = table.rows.map((r, i) => codeCell(r[code], `socket error row ${i + 1}`));
    for (const c of documented) assert.ok(Object.hasOwn(ErrorCodes, c), `documented socket error code \`${c}\` exists in ErrorCodes`);
    assert.deepEqual(sorted(documented), sorted(errorCodes), 'each ErrorCodes key has exactly one row');
    for (const r of table.rows) {
      const c = codeCell(r[code], 'socket error row') as keyof typeof ErrorCodes;
      assert.equal(plain(r[meaning] ?? ''), ErrorCodes[c], `meaning of \`${c}\``);
    }
  });

  test('HTTP error codes table: every HttpErrorCodes key once, with its status and message, no stale code', () => {
    const table = onlyTable(section(/^HTTP error codes/), 'HTTP error codes');
    const code = column(table, 'Code');
    const status = column(table, 'Status');
    const meaning = column(table, 'Meaning');
    const documented = table.rows.map((r, i) => codeCell(r[code], `HTTP error row ${i + 1}`));
    for (const c of documented) assert.ok(Object.hasOwn(HttpErrorCodes, c), `documented HTTP error code \`${c}\` exists in HttpErrorCodes`);
    assert.deepEqual(sorted(documented), sorted(httpErrorCodes), 'each HttpErrorCodes key has exactly one row');
    for (const r of table.rows) {
      const c = codeCell(r[code], 'HTTP error row') as keyof typeof HttpErrorCodes;
      assert.equal(Number(r[status]), HttpErrorCodes[c][0], `status of \`${c}\``);
      assert.equal(plain(r[meaning] ?? ''), HttpErrorCodes[c][1], `meaning of \`${c}\``);
    }
  });

  test('close codes table: every CloseCodes entry once, number matching name, no stale code', () => {
    const table = onlyTable(section(/^Close codes/), 'close codes');
    const number = column(table, 'Number');
    const name = column(table, 'Name');
    const documented = table.rows.map((r, i) => {
      const n = codeCell(r[name], `close code row ${i + 1}`);
      const num = Number(codeCell(r[number], `close code row ${i + 1}`));
      assert.ok(Object.hasOwn(CloseCodes, n), `documented close code name \`${n}\` exists in CloseCodes`);
      assert.equal(num, CloseCodes[n as keyof typeof CloseCodes], `number of close code \`${n}\``);
      return n;
    });
    assert.deepEqual(sorted(documented), sorted(closeCodeNames), 'each CloseCodes entry has exactly one row');
  });

  test('every other table with Status and Code columns (per-route errors) uses registry codes with their status', () => {
    const registryTables = new Set([
      ...tables(section(/^Socket error codes/)),
      ...tables(section(/^HTTP error codes/)),
      ...tables(section(/^Close codes/)),
    ].map((t) => JSON.stringify(t)));
    const routeTables = tables(proseLines).filter((t) => !registryTables.has(JSON.stringify(t)) && t.header.includes('Status') && t.header.includes('Code'));
    assert.ok(routeTables.length >= 5, `the HTTP API section documents its routes' errors in tables (found ${routeTables.length})`);
    for (const table of routeTables) {
      const code = column(table, 'Code');
      const status = column(table, 'Status');
      for (const [i, r] of table.rows.entries()) {
        const c = codeCell(r[code], `route error row ${i + 1} of [${table.header.join(' | ')}]`);
        assert.ok(Object.hasOwn(HttpErrorCodes, c), `documented route error code \`${c}\` exists in HttpErrorCodes`);
        assert.equal(Number(r[status]), HttpErrorCodes[c as keyof typeof HttpErrorCodes][0], `status of \`${c}\` in a route table`);
      }
    }
  });
});

describe('docs/protocol.md examples', () => {
  test('every send_message example carries a ref of its own, never a small number a reader would reuse', () => {
    // A ref is remembered per user for 24 hours: a reader who copies `"ref":1` twice loses the
    // second message silently. Examples in prose, code blocks and comments all count.
    const docs = [doc, readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8')];
    const refs: string[] = [];
    for (const text of docs) {
      for (const m of text.matchAll(/"type"\s*:\s*"send_message"[^\n]*?"ref"\s*:\s*("[^"]*"|-?\d+)/g)) refs.push(m[1] as string);
    }
    assert.ok(refs.length >= 3, `found the examples (${refs.length})`);
    for (const r of refs) assert.ok(r.startsWith('"') && r.length >= 10, `send_message example ref ${r} is a unique-looking string`);
    assert.equal(new Set(refs).size, refs.length, `no two examples share a ref: ${refs.join(', ')}`);
    assert.match(doc, /Copy the shape, never the value/);
  });
});
