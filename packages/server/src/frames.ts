/**
 * Encoding of server frames. A frame is serialized and framed once, however many sockets it
 * goes to: `frameText` builds the complete WebSocket frame (RFC 6455 §5.2: FIN + text opcode,
 * payload length, no mask — servers never mask) and every receiver is written the same bytes.
 */
import { isRoomEvent, type Ref, type ServerEvents, type ServerEventType, type TimelineItem } from '@parley/protocol';

export function encode<K extends ServerEventType>(type: K, payload: ServerEvents[K], ref?: Ref): string {
  return ref === undefined ? JSON.stringify({ type, payload }) : JSON.stringify({ type, payload, ref });
}

/** An item of a room's stream as its live event: `new_message`, or the room event's own type with its fields. */
export function encodeItem(item: TimelineItem, ref?: Ref): string {
  if (!isRoomEvent(item)) return encode('new_message', item, ref);
  const { type, ...payload } = item;
  return ref === undefined ? JSON.stringify({ type, payload }) : JSON.stringify({ type, payload, ref });
}

/** A complete unmasked WebSocket text frame holding `text` (UTF-8). */
export function frameText(text: string): Buffer {
  const n = Buffer.byteLength(text);
  const head = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (n < 126) {
    frame[1] = n;
  } else if (n < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  frame.write(text, head, 'utf8');
  return frame;
}
