/** Encoding of server frames. A frame is serialized once, however many sockets it goes to. */
import type { Ref, ServerEvents, ServerEventType } from '@parley/protocol';

export function encode<K extends ServerEventType>(type: K, payload: ServerEvents[K], ref?: Ref): string {
  return ref === undefined ? JSON.stringify({ type, payload }) : JSON.stringify({ type, payload, ref });
}
