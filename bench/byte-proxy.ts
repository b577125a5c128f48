import { startTcpRelay, type TcpRelay } from './tcp-relay.ts';

// A loopback TCP relay that counts the bytes it carries each way: what a device and the gateway
// put on the wire (TLS records, so MQTT framing and TLS overhead included; TCP/IP headers not).

export interface ByteProxy extends TcpRelay {
  /** Bytes device → gateway and gateway → device since the start. */
  readonly up: () => number;
  readonly down: () => number;
}

export async function startByteProxy(target: { host: string; port: number }): Promise<ByteProxy> {
  let up = 0;
  let down = 0;
  const relay = await startTcpRelay(target, (inbound, outbound) => {
    inbound.on('data', (d: Buffer) => {
      up += d.length;
    });
    outbound.on('data', (d: Buffer) => {
      down += d.length;
    });
    inbound.pipe(outbound).pipe(inbound);
    return () => {
      inbound.destroy();
      outbound.destroy();
    };
  });
  return { ...relay, up: () => up, down: () => down };
}
