import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writer } from '../../shared/tpm/bytes.ts';
import { freePortPair } from '../support/ports.ts';
import type { Swtpm } from '../support/swtpm.ts';

// A man in the middle of the TPM bus, for tests: a loopback TCP relay in front of swtpm's server
// port that understands both framings swtpm accepts there (the MS simulator's, which our
// transport speaks, and raw TPM commands, which tpm2-tools' swtpm TCTI sends, one connection per
// command). It records every byte, and can answer a command itself or alter a response, as an
// interposer on the SPI lines of a Raspberry Pi could. Like swtpm it listens on two consecutive
// ports: the control port (P+1, which tpm2-tools use to set the locality) is relayed untouched.

const SEND_COMMAND = 8;
const SESSION_END = 20;

export interface Interposer {
  /** `swtpm:host=127.0.0.1,port=P`: give this to the Tpm or tpm2-tools instead of swtpm's. */
  readonly tcti: string;
  /** Every byte that crossed, both ways, in order. */
  recorded(): Buffer;
  /** Forgets what was recorded so far. */
  clearRecording(): void;
  /** Returns a response to answer `command` without passing it on, or undefined to pass it on. */
  answer: ((command: Uint8Array) => Uint8Array | undefined) | undefined;
  /** Returns what the agent gets instead of the TPM's `response` to `command`. */
  alter: ((command: Uint8Array, response: Uint8Array) => Uint8Array) | undefined;
  close(): Promise<void>;
}

/** Reads exact byte counts from a socket; undefined once the socket ended. */
class ByteQueue {
  #buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake?.();
    });
    const end = () => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('end', end).on('close', end).on('error', end);
  }

  async take(n: number): Promise<Buffer | undefined> {
    while (this.#buffer.length < n) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }
}

/** A raw TPM command or response: its header's size field says how long it is. */
async function readTpmMessage(q: ByteQueue, first: Buffer): Promise<Buffer | undefined> {
  const rest = await q.take(10 - first.length);
  if (rest === undefined) return undefined;
  const header = Buffer.concat([first, rest]);
  const body = await q.take(header.readUInt32BE(2) - 10);
  return body && Buffer.concat([header, body]);
}

/** Relays each connection to `target`; `serve` moves the bytes. Takes both sockets down together. */
function relayServer(
  target: number,
  sockets: Set<Socket>,
  serve: (client: Socket, server: Socket) => Promise<void>,
): Server {
  return createServer((client) => {
    const server = connect({ host: '127.0.0.1', port: target });
    sockets.add(client).add(server);
    const down = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on('error', down).on('close', down);
    server.on('error', down).on('close', down);
    serve(client, server).then(down, down);
  });
}

const listen = (server: Server, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });

export async function startInterposer(swtpm: Pick<Swtpm, 'port' | 'ctrlPort'>): Promise<Interposer> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const record = (b: Uint8Array) => chunks.push(Buffer.from(b));
  const relay = async (agent: Socket, tpm: Socket): Promise<void> => {
    const fromAgent = new ByteQueue(agent);
    const fromTpm = new ByteQueue(tpm);
    // One exchange: what the agent gets for `command` (sent to the TPM as `frame`), from the
    // hooks or from the TPM.
    const exchange = async (
      frame: Buffer,
      command: Buffer,
      readResponse: () => Promise<Buffer | undefined>,
    ): Promise<Buffer | undefined> => {
      record(frame);
      const forged = i.answer?.(command);
      if (forged !== undefined) return Buffer.from(forged);
      tpm.write(frame);
      const response = await readResponse();
      if (response === undefined) return undefined;
      record(response);
      return Buffer.from(i.alter ? i.alter(command, response) : response);
    };
    for (;;) {
      const head = await fromAgent.take(4);
      if (head === undefined) return;
      const type = head.readUInt32BE(0);
      if (type === SEND_COMMAND) {
        const meta = await fromAgent.take(5);
        const command = meta && (await fromAgent.take(meta.readUInt32BE(1)));
        if (meta === undefined || command === undefined) return;
        const response = await exchange(Buffer.concat([head, meta, command]), command, async () => {
          const len = await fromTpm.take(4);
          const body = len && (await fromTpm.take(len.readUInt32BE(0)));
          const ack = body && (await fromTpm.take(4));
          return ack && body;
        });
        if (response === undefined) return;
        agent.write(new Writer().u32(response.length).bytes(response).u32(0).finish());
      } else if (type === SESSION_END) {
        record(head);
        tpm.write(head);
      } else if (type >>> 16 === 0x8001 || type >>> 16 === 0x8002) {
        const command = await readTpmMessage(fromAgent, head);
        if (command === undefined) return;
        const response = await exchange(command, command, async () => {
          const first = await fromTpm.take(4);
          return first && (await readTpmMessage(fromTpm, first));
        });
        if (response === undefined) return;
        agent.write(response);
      } else {
        throw new Error(`interposer: unknown frame type 0x${type.toString(16)}`);
      }
    }
  };

  const data = relayServer(swtpm.port, sockets, relay);
  const control = relayServer(swtpm.ctrlPort, sockets, async (client, server) => {
    client.pipe(server).pipe(client);
    await new Promise((resolve) => client.once('close', resolve));
  });
  const [port, ctrlPort] = await freePortPair();
  await listen(data, port);
  await listen(control, ctrlPort);
  const i: Interposer = {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    recorded: () => Buffer.concat(chunks),
    clearRecording: () => {
      chunks.length = 0;
    },
    answer: undefined,
    alter: undefined,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([data, control].map((srv) => new Promise((resolve) => srv.close(resolve))));
    },
  };
  return i;
}

/** The command code of a raw TPM command. */
export const commandCode = (command: Uint8Array): number => Buffer.from(command).readUInt32BE(6);
