// Loopback ports for services started on this machine (swtpm, the demo gateway, tests).
import { createServer } from 'node:net';

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const got = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => resolve(got));
    });
  });
}

// Below Linux's ephemeral range (32768-60999 by default), from which the OS also picks the
// source port of every outgoing connection: a port taken there "free a moment ago" can be the
// source of someone's connect() by the time a server binds it. Up here only servers compete.
const LOW = 20_000;
const HIGH = 32_000;

/** A loopback port that was free a moment ago, outside the range outgoing connections use. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if ((await listenOn(port)) !== undefined) return port;
  }
  const port = await listenOn(0);
  if (port === undefined) throw new Error('could not get a free loopback port from the OS');
  return port;
}

/** Two consecutive free ports, [P, P+1], as swtpm wants for its server and control sockets. */
export async function freePortPair(): Promise<[number, number]> {
  for (let tries = 0; tries < 50; tries++) {
    const port = await freePort();
    if (port >= 65535) continue;
    if ((await listenOn(port + 1)) !== undefined && (await listenOn(port)) !== undefined)
      return [port, port + 1];
  }
  throw new Error('no two consecutive free loopback ports found after 50 tries');
}
