import { connect, createServer, type Server } from 'node:net';

// A loopback TCP relay that counts the bytes it carries each way: what a device and the gateway
// put on the wire (TLS records, so MQTT framing and TLS overhead included; TCP/IP headers not).

export interface ByteProxy {
  readonly port: number;
  /** Bytes device → gateway and gateway → device since the start. */
  readonly up: () => number;
  readonly down: () => number;
  close(): Promise<void>;
}

export async function startByteProxy(target: { host: string; port: number }): Promise<ByteProxy> {
  let up = 0;
  let down = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(target);
    sockets.add(inbound).add(outbound);
    inbound.on('data', (d: Buffer) => {
      up += d.length;
    });
    outbound.on('data', (d: Buffer) => {
      down += d.length;
    });
    inbound.pipe(outbound).pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    up: () => up,
    down: () => down,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
