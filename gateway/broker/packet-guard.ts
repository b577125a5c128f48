import type { Duplex } from 'node:stream';

// An MQTT packet announces its size in its fixed header (up to 256 MiB), and the MQTT parser
// buffers the whole packet before anyone can judge it: one device could make the gateway hold
// hundreds of MiB per connection (measured: ~120 MiB for one 64 MiB PUBLISH). This guard reads
// only the fixed headers as the broker consumes the stream and cuts the connection as soon as a
// packet announces more than any policy could accept. It observes: the socket stays the one the
// broker reads (the TLS exporter is taken from it).

/** The largest `maxPayload` a policy may set (16 MiB), plus room for the topic and headers. */
export const MAX_PACKET_BYTES = 16 * 1024 * 1024 + 64 * 1024;

/**
 * Watches `socket`'s MQTT packet boundaries and calls `exceeded` (then destroys the socket) when a
 * packet's remaining length is over `max`, or its length field is not a valid MQTT varint. Attach
 * after the broker's own reader, so that the broker's reads drive the `data` events seen here.
 */
export function guardPacketSize(socket: Duplex, max: number, exceeded: (announced: number) => void): void {
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
      if (length > max) {
        exceeded(length);
        socket.destroy();
        return;
      }
      skip = length;
    }
  });
}
