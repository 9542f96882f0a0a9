/**
 * Batched message writer: every message accepted during one turn of the event loop is stored
 * in one store transaction, then handed to `onStored` in seq order, then each submitter's
 * promise settles. One batch is in flight at a time, so per-room order is the store's order.
 * A message is broadcast only after it is stored. Duplicates (a retried `ref`) settle with the
 * original seq and are not handed to `onStored` again.
 *
 * One message never fails another's: when the store refuses a batch because of a value in it
 * (StoreError 'invalid'), the batch is split in halves and each half is stored on its own, down
 * to the one message the store refuses, which alone is rejected with that error; everything
 * else is stored, in order. Only a store that cannot write at all (StoreError 'unavailable')
 * refuses the whole batch, and nothing of it is broadcast.
 *
 * Counted (metrics.ts): messages stored (`parley_messages_stored_total`), the time of each
 * store call (`parley_store_write_seconds`), and each store call that failed
 * (`parley_store_errors_total{op="append", kind}`: kind is the StoreError code).
 */
import type { ChatMessage } from '@parley/protocol';
import { Metrics } from './metrics.js';
import { type Appended, type NewMessage, type Store, StoreError } from './store/store.js';

interface Pending {
  msg: NewMessage;
  resolve: (m: Appended) => void;
  reject: (err: unknown) => void;
}

/** Upper bound on one transaction, so one huge burst does not stall the loop. */
const MAX_BATCH = 1000;

export class MessageWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly onStored: (messages: readonly ChatMessage[]) => void,
    private readonly metrics: Metrics = new Metrics(),
  ) {}

  submit(msg: NewMessage): Promise<Appended> {
    return new Promise((resolve, reject) => {
      this.queue.push({ msg, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight !== undefined) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.inFlight = this.flush().finally(() => {
        this.inFlight = undefined;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue.length <= MAX_BATCH ? this.queue : this.queue.slice(0, MAX_BATCH);
    this.queue = this.queue.length <= MAX_BATCH ? [] : this.queue.slice(MAX_BATCH);
    await this.storeBatch(batch);
  }

  /** Stores `batch` (see the module doc), settling each submitter's promise. */
  private async storeBatch(batch: Pending[]): Promise<void> {
    let stored: Appended[];
    const took = this.metrics.storeWriteSeconds.startTimer();
    try {
      stored = await this.store.appendMessages(batch.map((p) => p.msg));
      took();
    } catch (err) {
      took();
      this.metrics.storeErrors.inc({ op: 'append', kind: err instanceof StoreError ? err.code : 'internal' });
      if (batch.length > 1 && err instanceof StoreError && err.code === 'invalid') {
        const half = Math.ceil(batch.length / 2);
        await this.storeBatch(batch.slice(0, half));
        await this.storeBatch(batch.slice(half));
        return;
      }
      for (const p of batch) p.reject(err);
      return;
    }
    const fresh: ChatMessage[] = [];
    for (const a of stored) if (!a.duplicate) fresh.push(a.message);
    this.metrics.messagesStored.inc(fresh.length);
    this.onStored(fresh);
    batch.forEach((p, i) => {
      const a = stored[i];
      if (a !== undefined) p.resolve(a);
      else p.reject(new StoreError('unavailable', 'the store answered fewer messages than it was given'));
    });
  }

  /** Resolves once everything submitted so far is stored (or refused). */
  async drain(): Promise<void> {
    while (this.inFlight !== undefined || this.queue.length > 0 || this.scheduled) {
      if (this.inFlight !== undefined) await this.inFlight;
      else await new Promise((r) => setImmediate(r));
    }
  }
}
