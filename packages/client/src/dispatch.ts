/**
 * Incoming frames: parsed into the protocol's ServerFrame union and dispatched by type. The
 * switch is exhaustive: a server event added to @parley/protocol fails to compile here until the
 * SDK handles it (and, if it is passed to on(), has an entry in ClientEventMap).
 */
import { isServerFrame, type Ref, type RoomEvent, type ServerEvents, type ServerFrame, type TimelineItem } from '@parley/protocol';
import type { ClientEventMap } from './types.js';

/** Server events passed to on() as they come. */
type PassedOn = 'presence' | 'user_joined' | 'user_left' | 'typing';

/** What the client does with each kind of frame. `ref` is the request the frame answers, if any. */
export interface FrameHandlers {
  welcome(w: ServerEvents['welcome']): void;
  /** A seq-bearing frame of a room's stream: a chat message, or a room event (with its `type`). `ref`: for `room_created`, the `create_room` it answers. */
  item(ref: Ref | undefined, m: TimelineItem): void;
  invited(i: ServerEvents['invited']): void;
  removed(r: ServerEvents['removed']): void;
  directOpened(ref: Ref | undefined, d: ServerEvents['direct_opened']): void;
  ack(ref: Ref | undefined, a: ServerEvents['ack']): void;
  joined(ref: Ref | undefined, j: ServerEvents['joined']): void;
  left(ref: Ref | undefined, l: ServerEvents['left']): void;
  history(ref: Ref | undefined, h: ServerEvents['history']): void;
  resumed(ref: Ref | undefined, r: ServerEvents['resumed']): void;
  error(ref: Ref | undefined, e: ServerEvents['error']): void;
  pass<K extends PassedOn>(event: K, payload: ClientEventMap[K]): void;
}

/** A server frame from a socket message (text, or binary holding UTF-8), or undefined when it is not one. */
export function parseFrame(data: unknown): ServerFrame | undefined {
  let text: string;
  if (typeof data === 'string') text = data;
  else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) text = new TextDecoder().decode(data);
  else return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isServerFrame(value) ? value : undefined; // unknown (future) event types are ignored
}

export function dispatch(frame: ServerFrame, to: FrameHandlers): void {
  switch (frame.type) {
    case 'welcome':
      return to.welcome(frame.payload);
    case 'new_message':
      return to.item(undefined, frame.payload);
    case 'room_created':
      return to.item(frame.ref, { type: 'room_created', ...frame.payload });
    case 'member_joined':
      return to.item(undefined, { type: 'member_joined', ...frame.payload });
    case 'member_left':
      return to.item(undefined, { type: 'member_left', ...frame.payload });
    case 'banned':
      return to.item(undefined, { type: 'banned', ...frame.payload });
    case 'unbanned':
      return to.item(undefined, { type: 'unbanned', ...frame.payload });
    case 'role_changed':
      return to.item(undefined, { type: 'role_changed', ...frame.payload });
    case 'muted':
      return to.item(undefined, { type: 'muted', ...frame.payload });
    case 'unmuted':
      return to.item(undefined, { type: 'unmuted', ...frame.payload });
    case 'invited':
      return to.invited(frame.payload);
    case 'removed':
      return to.removed(frame.payload);
    case 'direct_opened':
      return to.directOpened(frame.ref, frame.payload);
    case 'ack':
      return to.ack(frame.ref ?? frame.payload.ref, frame.payload);
    case 'joined':
      return to.joined(frame.ref, frame.payload);
    case 'left':
      return to.left(frame.ref, frame.payload);
    case 'history':
      return to.history(frame.ref, frame.payload);
    case 'resumed':
      return to.resumed(frame.ref, frame.payload);
    case 'error':
      return to.error(frame.ref ?? frame.payload.ref, frame.payload);
    case 'presence':
      return to.pass('presence', frame.payload);
    case 'user_joined':
      return to.pass('user_joined', frame.payload);
    case 'user_left':
      return to.pass('user_left', frame.payload);
    case 'typing':
      return to.pass('typing', frame.payload);
    case 'room_changed':
      return; // the SDK never sends change_room
    default: {
      const _exhaustive: never = frame;
      return _exhaustive;
    }
  }
}

/** The live payload of a room event (its `type` taken off), as on() passes it. */
export function emitRoomEvent(e: RoomEvent, emit: <K extends keyof ClientEventMap>(event: K, payload: ClientEventMap[K]) => void): void {
  switch (e.type) {
    case 'room_created': {
      const { type: _t, ...p } = e;
      return emit('room_created', p);
    }
    case 'member_joined': {
      const { type: _t, ...p } = e;
      return emit('member_joined', p);
    }
    case 'member_left': {
      const { type: _t, ...p } = e;
      return emit('member_left', p);
    }
    case 'banned': {
      const { type: _t, ...p } = e;
      return emit('banned', p);
    }
    case 'unbanned': {
      const { type: _t, ...p } = e;
      return emit('unbanned', p);
    }
    case 'role_changed': {
      const { type: _t, ...p } = e;
      return emit('role_changed', p);
    }
    case 'muted': {
      const { type: _t, ...p } = e;
      return emit('muted', p);
    }
    case 'unmuted': {
      const { type: _t, ...p } = e;
      return emit('unmuted', p);
    }
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}
