import type { AddressInfo, Server } from 'node:net';

/**
 * Binds a server (the broker's, the API's, the health check's) and resolves with its port: port 0
 * takes a free one. A bind failure (the port in use, a host not on this machine) rejects, and the
 * listener that caught it does not stay behind to swallow the server's later errors.
 */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
