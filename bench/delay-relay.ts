import { connect, createServer, type Socket } from 'node:net';

// Where netem is unavailable (no sch_netem in this kernel), a loopback TCP relay that delays
// every chunk by half the RTT in each direction. The TCP handshake to the relay itself is local,
// so the relay holds a connection's first upstream chunk for one extra RTT: the ClientHello then
// reaches the gateway when it would have behind a real SYN / SYN-ACK exchange. Order is kept:
// a chunk never leaves before the one ahead of it.

export interface DelayRelay {
  readonly port: number;
  close(): Promise<void>;
}

function delayedWriter(to: Socket, delayMs: number): (chunk: Buffer, extraMs?: number) => void {
  let last = 0;
  return (chunk, extraMs = 0) => {
    const at = Math.max(performance.now() + delayMs + extraMs, last);
    last = at;
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, at - performance.now());
  };
}

export async function startDelayRelay(
  target: { host: string; port: number },
  rttMs: number,
): Promise<DelayRelay> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    inbound.setNoDelay(true);
    const outbound = connect(target);
    outbound.setNoDelay(true);
    sockets.add(inbound).add(outbound);
    const up = delayedWriter(outbound, rttMs / 2);
    const down = delayedWriter(inbound, rttMs / 2);
    let first = true;
    inbound.on('data', (d: Buffer) => {
      up(d, first ? rttMs : 0);
      first = false;
    });
    outbound.on('data', (d: Buffer) => down(d));
    const end = () => {
      setTimeout(() => {
        inbound.destroy();
        outbound.destroy();
      }, rttMs / 2);
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
