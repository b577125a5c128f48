import type { Socket } from 'node:net';
import { startTcpRelay, type TcpRelay } from './tcp-relay.ts';

// Where netem is unavailable (no sch_netem in this kernel), a loopback TCP relay that delays
// every chunk by half the RTT in each direction. The TCP handshake to the relay itself is local,
// so the relay holds a connection's first upstream chunk for one extra RTT: the ClientHello then
// reaches the gateway when it would have behind a real SYN / SYN-ACK exchange. Order is kept:
// a chunk never leaves before the one ahead of it.

export type DelayRelay = TcpRelay;

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

export function startDelayRelay(target: { host: string; port: number }, rttMs: number): Promise<DelayRelay> {
  return startTcpRelay(target, (inbound, outbound) => {
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    const up = delayedWriter(outbound, rttMs / 2);
    const down = delayedWriter(inbound, rttMs / 2);
    let first = true;
    inbound.on('data', (d: Buffer) => {
      up(d, first ? rttMs : 0);
      first = false;
    });
    outbound.on('data', (d: Buffer) => down(d));
    // Delayed as a chunk is: the far side sees the end about when it would over a real link.
    return () => {
      setTimeout(() => {
        inbound.destroy();
        outbound.destroy();
      }, rttMs / 2);
    };
  });
}
