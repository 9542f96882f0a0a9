/**
 * Incoming frames: parsed into the protocol's ServerFrame union and dispatched by type. The
 * switch is exhaustive: a server event added to @parley/protocol fails to compile here until the
 * SDK handles it (and, if it is passed to on(), has an entry in ClientEventMap).
 */
import { type ChatMessage, isServerFrame, type Ref, type ServerEvents, type ServerFrame } from '@parley/protocol';
import type { ClientEventMap } from './types.js';

/** Server events passed to on() as they come. */
type PassedOn = 'presence' | 'user_joined' | 'user_left' | 'typing';

/** What the client does with each kind of frame. `ref` is the request the frame answers, if any. */
export interface FrameHandlers {
  welcome(w: ServerEvents['welcome']): void;
  message(m: ChatMessage): void;
  ack(ref: Ref | undefined, a: ServerEvents['ack']): void;
  joined(ref: Ref | undefined, j: ServerEvents['joined']): void;
  left(ref: Ref | undefined): void;
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
      return to.message(frame.payload);
    case 'ack':
      return to.ack(frame.ref ?? frame.payload.ref, frame.payload);
    case 'joined':
      return to.joined(frame.ref, frame.payload);
    case 'left':
      return to.left(frame.ref);
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
