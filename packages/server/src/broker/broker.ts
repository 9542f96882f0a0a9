/**
 * The broker: fan-out between Parley nodes. Each node stores a message, delivers it to its own
 * clients at once, and publishes it so every other node delivers it to theirs.
 *
 * Implementations: `memory.ts` (default; one node, or several in one process sharing a bus) and
 * `redis.ts` (several nodes; Redis pub/sub). Every implementation passes
 * test/broker.contract.ts.
 *
 * Guarantees every implementation gives:
 * - publish: at-most-once per subscribed node. A payload published while the backend is down is
 *   not delivered (publish rejects, with a BackendUnavailableError); receivers detect the missing seqs and read them from the
 *   store, so no stored message is lost for clients.
 * - order: payloads one node publishes to one topic reach each subscriber in publish order.
 *   Payloads of different nodes may interleave; receivers restore seq order per room.
 * - scope: a node receives only topics it subscribed to, its own publications included.
 * - subscriptions hold: a topic subscribed stays subscribed until unsubscribed, across every
 *   reconnect of the backend, including one whose `subscribe` rejected because the backend was
 *   down at the time (it is subscribed once the backend is back). `healthy` turns true after a
 *   reconnect only once every such topic is subscribed again.
 *
 * A topic is an opaque name (the cluster link, hub/cluster.ts, names one per room and one for
 * node-wide notices); a driver maps it to its own channel names.
 */
import type { Driver } from '../driver.js';

export type BrokerHandler = (topic: string, payload: string) => void;

/**
 * `healthy` is false while the backend is unreachable; `onHealth` is called on every change of
 * it (after a reconnect: true, so the node can resync).
 */
export interface Broker extends Driver {
  /** False when no other node can receive publications (a lone memory broker): skip publishing. */
  readonly fanout: boolean;
  /** Set by the hub: receives every payload of every subscribed topic. */
  onMessage?: BrokerHandler | undefined;
  publish(topic: string, payload: string): Promise<void>;
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
}
