/**
 * The SQLite store's checkpointer, a worker thread with its own connection to the database
 * file: every `intervalMs` it copies the write-ahead log into the database (PASSIVE: it never
 * blocks the writer nor waits for readers). A checkpoint syncs the log, writes pages and syncs
 * the database file (with `synchronous` FULL, the store's default, or NORMAL alike), which takes
 * milliseconds on a real disk; here it happens off the event loop instead of inside whichever
 * commit crosses the WAL's auto-checkpoint size. (With NORMAL these are the only syncs; with
 * FULL every commit also syncs the log: sqlite.ts.)
 * The main thread posts 'close' to stop it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { codeOf, messageOf } from '../failure.js';

export interface CheckpointerData {
  file: string;
  intervalMs: number;
}

/** Posted to the main thread when a checkpoint fails other than by being busy. */
export interface CheckpointerError {
  code: string;
  message: string;
}

/** The same failure is reported again only after this long, ms. */
const REPORT_EVERY_MS = 60_000;

const { file, intervalMs } = workerData as CheckpointerData;
const db = new Database(file);
db.pragma('busy_timeout = 5000');
let reported: { code: string; at: number } | undefined;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    reported = undefined;
  } catch (err) {
    // The next interval tries again, and the writer's own auto-checkpoint (at a larger size)
    // still bounds the log. Busy is expected now and then; anything else is reported.
    const found = codeOf(err);
    const code = typeof found === 'string' ? found : 'UNKNOWN';
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return;
    const now = Date.now();
    if (reported?.code === code && now - reported.at < REPORT_EVERY_MS) return;
    reported = { code, at: now };
    parentPort?.postMessage({ code, message: messageOf(err) } satisfies CheckpointerError);
  }
}, intervalMs);

parentPort?.on('message', (m: unknown) => {
  if (m !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
