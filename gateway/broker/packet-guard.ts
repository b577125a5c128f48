import type { Duplex } from 'node:stream';

// An MQTT packet announces its size in its fixed header (up to 256 MiB), and the MQTT parser
// buffers the whole packet before anyone can judge it: one device could make the gateway hold
// hundreds of MiB per connection (measured: ~120 MiB for one 64 MiB PUBLISH). This guard reads
// only the fixed headers as the broker consumes the stream and cuts the connection as soon as a
// packet announces more than the policy could accept (packetLimit). It observes: the socket stays
// the one the broker reads (the TLS exporter is taken from it).

/** Room in a packet besides the payload: topic (at most 64 KiB in MQTT), headers, a will's topic. */
const PACKET_OVERHEAD = 64 * 1024 + 16;
/** The largest `maxPayload` a policy may set. */
const MAX_POLICY_PAYLOAD = 16 * 1024 * 1024;

/**
 * The largest packet read for a policy's `maxPayload`. A payload up to twice the maximum is still
 * read, and refused with a clear error (a client that misjudged the limit learns it); a packet
 * announcing more is cut at its header. Never more than the largest maxPayload a policy may set.
 */
export function packetLimit(maxPayload: number): number {
  return Math.min(2 * maxPayload, MAX_POLICY_PAYLOAD) + PACKET_OVERHEAD;
}

/**
 * Watches `socket`'s MQTT packet boundaries and calls `exceeded` (then destroys the socket) when a
 * packet's remaining length is over `max()` (read per packet: a policy reload applies to the next
 * one), or its length field is not a valid MQTT varint. Attach after the broker's own reader, so
 * that the broker's reads drive the `data` events seen here.
 */
export function guardPacketSize(
  socket: Duplex,
  max: () => number,
  exceeded: (announced: number) => void,
): void {
  let skip = 0; // body bytes of the current packet still to pass
  let header: number[] = []; // the fixed header being read: type byte, then the length varint
  socket.on('data', (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i);
        skip -= n;
        i += n;
        continue;
      }
      header.push(chunk[i++]!);
      if (header.length === 1) continue;
      if (header.at(-1)! & 0x80) {
        if (header.length < 5) continue;
        exceeded(Number.POSITIVE_INFINITY); // a fifth length byte: not MQTT
        socket.destroy();
        return;
      }
      let length = 0;
      for (let k = header.length - 1; k >= 1; k--) length = length * 128 + (header[k]! & 0x7f);
      header = [];
      if (length > max()) {
        exceeded(length);
        socket.destroy();
        return;
      }
      skip = length;
    }
  });
}
