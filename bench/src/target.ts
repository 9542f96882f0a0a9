/**
 * What the benchmark suite needs from each server under test (Parley and its peers): start it
 * pinned to a core, open client connections in its protocol, send a stamped chat message, and
 * report every stamped message a client receives.
 *
 * A chat message in every protocol carries the sender's stamp (performance.now() of the load
 * generator, as text) so latency is measured from send to each delivery.
 */
export interface RunningServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export interface BenchClient {
  /** Sends a chat message stamped `stamp` to the client's room. */
  send(stamp: number): void;
  close(): void;
}

export interface ConnectOptions {
  /** Source address for the TCP connection (127.0.0.x), to go past one address's ephemeral ports. */
  localAddress?: string;
  /** Called for every ping the server sends this connection (heartbeats). */
  onPing?: () => void;
  /** Called when the connection closes, once it was open. */
  onClose?: (code: number) => void;
  /**
   * The members variants: the connection is to be in these rooms (from `roomsOf`), not in
   * `room`, before connect resolves: followed from stored memberships where the target has them,
   * else joined after connect (`join` frames). Messages go to the first.
   */
  rooms?: readonly string[];
}

export interface Target {
  readonly name: string;
  /** Starts the server pinned to `core` (taskset). Rejects with a clear message when it cannot run here. */
  start(core: string): Promise<RunningServer>;
  /** One-time preparation before connections are opened (e.g. Parley: accounts and tokens). */
  prepare?(server: RunningServer, clients: number): Promise<void>;
  /**
   * Opens a connection, joins `room`, and resolves once joined. `onStamp` is called with the
   * stamp of every chat message the connection receives.
   */
  connect(server: RunningServer, index: number, room: string, onStamp: (stamp: number) => void, opts?: ConnectOptions): Promise<BenchClient>;
  /** One HTTP ticket request alone (POST /ticket, on Parley and on every peer). */
  ticket?(server: RunningServer, index: number): Promise<void>;
  /** The members variants: the `perAccount` rooms connection `index`'s account is in (targets with accounts). */
  roomsOf?(index: number, perAccount: number): string[];
  /**
   * The members variants, before the measured part: every account becomes a stored member of
   * exactly its `roomsOf` rooms, once. Only targets that store memberships have it; the others
   * join the rooms after each connect.
   */
  prepareMemberships?(server: RunningServer, perAccount: number): Promise<void>;
}

/** Parses the stamp out of a message text of the form `@<number>`. */
export const stampOf = (text: string): number => (text.charCodeAt(0) === 64 /* @ */ ? Number(text.slice(1)) : NaN);
