// An MQTT 3.1.1 PUBLISH at QoS 0, not retained (§3.3), framed in one buffer: what the gateway
// writes to one device connection. Going through aedes for this (a packet object, the forward
// hook, two setImmediates, a write per header field) cost more than the framing itself, and an
// `in` message never needs aedes' fan-out: it has exactly one recipient.

/** MQTT's largest remaining length (four varint bytes). */
const MAX_REMAINING = 268_435_455;

/**
 * The UTF-8 topic with its 2-byte length prefix, made once per connection and kept by it: in a
 * buffer of its own (Buffer.alloc), since a small one from Node's shared pool would keep a whole
 * 8 KB slab alive per connection.
 */
export function topicField(topic: string): Buffer {
  const utf8 = Buffer.from(topic, 'utf8');
  if (utf8.length > 0xffff) throw new RangeError(`MQTT topic of ${utf8.length} bytes exceeds 65,535`);
  const field = Buffer.alloc(2 + utf8.length);
  field.writeUInt16BE(utf8.length, 0);
  utf8.copy(field, 2);
  return field;
}

export function publishFrame(topic: Buffer, payload: Uint8Array): Buffer {
  const remaining = topic.length + payload.length;
  if (remaining > MAX_REMAINING)
    throw new RangeError(`MQTT packet of ${remaining} bytes exceeds the maximum`);
  let lengthBytes = 1;
  for (let n = remaining; n > 127; n = Math.floor(n / 128)) lengthBytes++;
  const frame = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  frame[0] = 0x30; // PUBLISH, DUP 0, QoS 0, RETAIN 0
  let i = 1;
  let n = remaining;
  do {
    const byte = n % 128;
    n = Math.floor(n / 128);
    frame[i++] = n > 0 ? byte | 0x80 : byte;
  } while (n > 0);
  topic.copy(frame, i);
  frame.set(payload, i + topic.length);
  return frame;
}
