import { connect, createServer, type Socket } from 'node:net';

// The loopback TCP relay the bench puts between a device and the gateway: for each connection it
// accepts it opens one to the target, and when either side closes or fails the pair is taken
// down. What happens to the bytes in between (counted, delayed) is the caller's.

export interface TcpRelay {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * `join` connects the two sockets of a new pair and returns how to take the pair down once
 * either side has ended.
 */
export async function startTcpRelay(
  target: { host: string; port: number },
  join: (inbound: Socket, outbound: Socket) => () => void,
): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(target);
    sockets.add(inbound).add(outbound);
    const takeDown = join(inbound, outbound);
    const end = () => {
      takeDown();
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
