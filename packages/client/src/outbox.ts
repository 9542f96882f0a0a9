/** Frames waiting to go out on the live connection, sent as fast as the Pacer allows. */
import { Pacer } from './pacer.js';
import type { Request, SendRequest } from './requests.js';
import type { WebSocketLike } from './types.js';

/** A frame that is not a request (the resume, typing notices). */
export interface RawFrame {
  kind: 'raw';
  frame: string;
}

export type Outgoing = Request | RawFrame;

export interface OutboxPort {
  /** The socket to write to while a connection is live (welcomed), else undefined. */
  socket(): WebSocketLike | undefined;
  /** Whether a request still waits for its answer (it may have been settled while queued). */
  isPending(ref: string): boolean;
  /** A send went on the wire: its ack timer starts. */
  sent(r: SendRequest): void;
}

export class Outbox {
  private items: Outgoing[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  readonly pacer = new Pacer();

  constructor(private readonly port: OutboxPort) {}

  get length(): number {
    return this.items.length;
  }

  push(item: Outgoing): void {
    this.items.push(item);
    this.pump();
  }

  /** Sends from the outbox as fast as the server's rate limit allows. */
  pump(): void {
    const ws = this.port.socket();
    if (this.timer !== undefined || ws === undefined) return;
    this.pacer.refill();
    let item: Outgoing | undefined;
    while (this.pacer.ready && (item = this.items.shift()) !== undefined) {
      if (item.kind !== 'raw') {
        item.queued = false;
        if (!this.port.isPending(item.ref)) continue; // settled meanwhile
      }
      try {
        ws.send(item.frame);
      } catch {
        return; // the socket is closing; its close event follows
      }
      this.pacer.spend();
      if (item.kind === 'send') this.port.sent(item);
    }
    if (this.items.length > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, this.pacer.waitMs());
    }
  }

  /** Drops everything queued (the connection is gone); requests stay pending for the next one. */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const item of this.items) if (item.kind !== 'raw') item.queued = false;
    this.items = [];
  }
}
