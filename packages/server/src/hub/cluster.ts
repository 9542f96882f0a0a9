/**
 * The cluster link: what Parley nodes tell each other over the broker, typed.
 *
 * Every node-to-node message is a `ClusterMessage` (a discriminated union on `type`) with the
 * format version `v` and the sending node `node`; `encode`/`decode` are its codec. Room traffic
 * (stored messages and room events, ephemeral frames) travels on the room's topic, so a node hears only the
 * rooms it has members in; node-wide notices (session revocations, new memberships) on their own topic,
 * CONTROL_TOPIC, which no room can name.
 *
 * Guarantees (on top of the broker's, see broker/broker.ts):
 * - A node never acts on its own publications, nor on a message of another format version, nor
 *   on a malformed one (each is logged and dropped; `decode` never throws).
 * - A room message is passed on only for the room of the topic it came on.
 * - Publishing never throws: a failed publication is logged; receivers recover stored messages
 *   from the store (their room feeds notice the gap).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isRoomEventType, type ServerEvents, type TimelineItem } from '@parley/protocol';
import type { Broker } from '../broker/broker.js';

/** The format version of ClusterMessage. A node ignores messages of another version. */
export const CLUSTER_VERSION = 2;

export type ClusterMessage =
  /** A stored message or room event, for the room's feeds on other nodes. */
  | { v: typeof CLUSTER_VERSION; node: string; type: 'message'; message: TimelineItem }
  /** `user` was made a member of a room: their connections follow it (on CONTROL_TOPIC). */
  | { v: typeof CLUSTER_VERSION; node: string; type: 'invited'; user: string; invited: ServerEvents['invited'] }
  /** An ephemeral event (presence, typing) already serialized; not to connections of `exceptUser`. */
  | { v: typeof CLUSTER_VERSION; node: string; type: 'frame'; frame: string; exceptUser?: string }
  /** A session was revoked (logout): close its connections, refuse its tickets. */
  | { v: typeof CLUSTER_VERSION; node: string; type: 'revoke'; session: string };

/** The topic of node-wide notices. Room topics start with ROOM_TOPIC, which this one does not. */
export const CONTROL_TOPIC = 'control';
const ROOM_TOPIC = 'room:';
export const roomTopic = (room: string): string => ROOM_TOPIC + room;

/** A node's id: random, per server (several may share a process). */
export const newNodeId = (): string => randomBytes(6).toString('base64url');

export function encodeClusterMessage(m: ClusterMessage): string {
  return JSON.stringify(m);
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** A chat message (from, message) or a room event (a known type); the room event's own fields are the sending node's. */
function isTimelineItem(x: unknown): x is TimelineItem {
  if (!isObject(x) || typeof x.room !== 'string' || !Number.isSafeInteger(x.seq) || typeof x.sent !== 'string') return false;
  if (!('type' in x)) return typeof x.from === 'string' && typeof x.message === 'string';
  return x.type === 'room_created' ? typeof x.by === 'string' && Array.isArray(x.members) : isRoomEventType(x.type) && typeof x.user === 'string';
}

function isInvited(x: unknown): x is ServerEvents['invited'] {
  return isObject(x) && typeof x.room === 'string' && typeof x.by === 'string' && typeof x.role === 'string' && typeof x.visibility === 'string' && Number.isSafeInteger(x.seq);
}

/** The message, or a reason it is not one (malformed, or another format version). */
export function decodeClusterMessage(payload: string): ClusterMessage | string {
  let x: unknown;
  try {
    x = JSON.parse(payload);
  } catch {
    return 'not JSON';
  }
  if (!isObject(x)) return 'not an object';
  if (x.v !== CLUSTER_VERSION) return `version ${String(x.v).slice(0, 20)}`;
  const node = x.node;
  if (typeof node !== 'string') return 'no node';
  switch (x.type) {
    case 'message':
      return isTimelineItem(x.message) ? { v: CLUSTER_VERSION, node, type: 'message', message: x.message } : 'bad message';
    case 'invited':
      return typeof x.user === 'string' && isInvited(x.invited) ? { v: CLUSTER_VERSION, node, type: 'invited', user: x.user, invited: x.invited } : 'bad invited';
    case 'frame':
      if (typeof x.frame !== 'string' || (x.exceptUser !== undefined && typeof x.exceptUser !== 'string')) return 'bad frame';
      return x.exceptUser === undefined ? { v: CLUSTER_VERSION, node, type: 'frame', frame: x.frame } : { v: CLUSTER_VERSION, node, type: 'frame', frame: x.frame, exceptUser: x.exceptUser };
    case 'revoke':
      return typeof x.session === 'string' ? { v: CLUSTER_VERSION, node, type: 'revoke', session: x.session } : 'bad revoke';
    default:
      return 'unknown type';
  }
}

/** What a node does with other nodes' messages. */
export interface ClusterHandlers {
  message(m: TimelineItem): void;
  frame(room: string, frame: string, exceptUser: string | undefined): void;
  revoke(session: string): void;
  invited(user: string, invited: ServerEvents['invited']): void;
}

export class ClusterLink {
  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly handlers: ClusterHandlers,
    /** Tells this node's publications apart from other nodes'. */
    readonly nodeId: string = newNodeId(),
  ) {}

  /** Whether other nodes can hear this one (false for a lone memory broker: nothing is published). */
  get fanout(): boolean {
    return this.broker.fanout;
  }

  /**
   * Listens for node-wide notices when there are other nodes. Never rejects: a broker that is
   * down now subscribes the topic when it is back (broker/broker.ts).
   */
  async listen(): Promise<void> {
    if (!this.broker.fanout) return;
    await this.broker.subscribe(CONTROL_TOPIC).catch((err: unknown) => this.log.debug({ err }, 'control topic not subscribed yet; the broker subscribes it once connected'));
  }

  joinRoom(room: string): Promise<void> {
    return this.broker.subscribe(roomTopic(room));
  }

  leaveRoom(room: string): void {
    this.broker.unsubscribe(roomTopic(room)).catch((err: unknown) => this.log.debug({ err, room }, 'broker unsubscribe failed'));
  }

  /** `user` was made a member: their connections on the other nodes follow the room. */
  invited(user: string, invited: ServerEvents['invited']): void {
    this.publish(CONTROL_TOPIC, { v: CLUSTER_VERSION, node: this.nodeId, type: 'invited', user, invited });
  }

  message(m: TimelineItem): void {
    this.publish(roomTopic(m.room), { v: CLUSTER_VERSION, node: this.nodeId, type: 'message', message: m });
  }

  frame(room: string, frame: string, exceptUser?: string): void {
    this.publish(
      roomTopic(room),
      exceptUser === undefined ? { v: CLUSTER_VERSION, node: this.nodeId, type: 'frame', frame } : { v: CLUSTER_VERSION, node: this.nodeId, type: 'frame', frame, exceptUser },
    );
  }

  revoke(session: string): void {
    this.publish(CONTROL_TOPIC, { v: CLUSTER_VERSION, node: this.nodeId, type: 'revoke', session });
  }

  private publish(topic: string, m: ClusterMessage): void {
    if (!this.broker.fanout) return;
    this.broker.publish(topic, encodeClusterMessage(m)).catch((err: unknown) => {
      // Other nodes read stored messages from the store when they notice the gap.
      this.log.debug({ err, topic }, 'broker publish failed');
    });
  }

  /** A payload from the broker. Never throws: a malformed one is logged and dropped. */
  received(topic: string, payload: string): void {
    const m = decodeClusterMessage(payload);
    if (typeof m === 'string') {
      this.log.warn({ topic, why: m }, 'malformed cluster message');
      return;
    }
    if (m.node === this.nodeId) return;
    if (topic === CONTROL_TOPIC) {
      if (m.type === 'revoke') this.handlers.revoke(m.session);
      else if (m.type === 'invited') this.handlers.invited(m.user, m.invited);
      return;
    }
    if (!topic.startsWith(ROOM_TOPIC)) return;
    const room = topic.slice(ROOM_TOPIC.length);
    switch (m.type) {
      case 'message':
        if (m.message.room === room) this.handlers.message(m.message);
        return;
      case 'frame':
        this.handlers.frame(room, m.frame, m.exceptUser);
        return;
      case 'revoke':
      case 'invited':
        return; // only on CONTROL_TOPIC
      default: {
        const never: never = m;
        return never;
      }
    }
  }
}
