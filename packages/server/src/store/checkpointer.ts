/**
 * The SQLite store's checkpointer, a worker thread with its own connection to the database
 * file: every `intervalMs` it copies the write-ahead log into the database (PASSIVE: it never
 * blocks the writer nor waits for readers). A checkpoint writes pages and syncs the file (with
 * `synchronous = NORMAL`, twice), which takes milliseconds on a real disk; here it happens off
 * the event loop instead of inside whichever commit crosses the WAL's auto-checkpoint size.
 * The main thread posts 'close' to stop it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerData {
  file: string;
  intervalMs: number;
}

const { file, intervalMs } = workerData as CheckpointerData;
const db = new Database(file);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or briefly unavailable: the next interval tries again; the writer's own
    // auto-checkpoint (at a larger size) still bounds the log.
  }
}, intervalMs);

parentPort?.on('message', (m: unknown) => {
  if (m !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
