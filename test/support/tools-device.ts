import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import {
  bindingDigest,
  type Challenge,
  type Claims,
  channelExporter,
  decodeFromGateway,
  deviceIdentity,
  type Evidence,
  encodeClaims,
  encodeMessage,
  type GatewayMessage,
  type Hello,
  type Report,
  type SwEntry,
  topics,
} from '../../shared/protocol/index.ts';
import { toHex, Writer } from '../../shared/tpm/index.ts';
import { type Swtpm, startSwtpm } from './swtpm.ts';
import { removeDir, tempDir } from './tmp.ts';

// A device built from tpm2-tools commands and mqtt.js, sharing no attester code with the agent:
// what the gateway trusts is the protocol, not our agent. Tests also drive it step by step (hold
// an answer back, alter evidence) to try what an attacker would.

const EK_HANDLE = '0x81010001';
const AK_HANDLE = '0x81000b10';
const CREDENTIAL_MAGIC = 0xbadcc0de;

export interface ToolsDeviceOptions {
  readonly swPcr?: number;
  /** Software entries measured into swPcr at start. */
  readonly software?: readonly { name: string; version: string; digest: Uint8Array }[];
}

export interface Connected {
  readonly client: MqttClient;
  readonly socket: TLSSocket;
  /** Gateway messages on this connection, in arrival order. */
  next(timeoutMs?: number): Promise<GatewayMessage>;
  /** Application messages received on this connection. */
  readonly app: { topic: string; payload: Buffer }[];
  /** Subscribes; resolves with the granted QoS, 128 when the broker refused the filter. */
  subscribe(filter: string): Promise<number>;
  /** CONNACK's session-present flag: the broker kept a persistent session for this clientId. */
  readonly sessionPresent: boolean;
  close(): Promise<void>;
}

async function readTpm2b(path: string): Promise<Uint8Array> {
  const b = new Uint8Array(await readFile(path));
  return b.subarray(2);
}

export class ToolsDevice {
  readonly log: SwEntry[] = [];
  /** Set when the log restarted (TPM reset) since the last answer: the next one sends it from 0. */
  private restarted = false;

  private constructor(
    readonly swtpm: Swtpm,
    readonly dir: string,
    readonly ek: Uint8Array,
    readonly ak: Uint8Array,
    readonly swPcr: number,
  ) {}

  get id(): string {
    return deviceIdentity(this.ek).deviceId;
  }

  static async create(opts: ToolsDeviceOptions = {}): Promise<ToolsDevice> {
    const swtpm = await startSwtpm();
    const dir = tempDir('vigil-tools-device-');
    try {
      const t = (args: string[]) => swtpm.tpm2(args, { cwd: dir });
      await t(['tpm2_createek', '-c', EK_HANDLE, '-G', 'ecc', '-u', 'ek.pub']);
      await t([
        'tpm2_createak',
        '-C',
        EK_HANDLE,
        '-c',
        'ak.ctx',
        '-G',
        'ecc',
        '-g',
        'sha256',
        '-s',
        'ecdsa',
        '-u',
        'ak.pub',
      ]);
      await t(['tpm2_evictcontrol', '-c', 'ak.ctx', AK_HANDLE]);
      await swtpm.flushAll();
      const device = new ToolsDevice(
        swtpm,
        dir,
        await readTpm2b(join(dir, 'ek.pub')),
        await readTpm2b(join(dir, 'ak.pub')),
        opts.swPcr ?? 14,
      );
      for (const s of opts.software ?? []) await device.measure(s.name, s.version, s.digest);
      return device;
    } catch (e) {
      await swtpm.stop();
      removeDir(dir);
      throw e;
    }
  }

  private tools(args: string[]) {
    return this.swtpm.tpm2(args, { cwd: this.dir });
  }

  /** A TPM reset: PCRs are zero again, so the log starts over (and is sent whole next time). */
  async resetTpm(): Promise<void> {
    await this.swtpm.restart();
    this.log.length = 0;
    this.restarted = true;
  }

  /** Extends swPcr with a software digest and logs it, as the agent does. */
  async measure(name: string, version: string, digest: Uint8Array): Promise<void> {
    await this.tools(['tpm2_pcrextend', `${this.swPcr}:sha256=${toHex(digest)}`]);
    this.log.push({ digest, name, version });
  }

  hello(overrides: Partial<Hello> = {}): Hello {
    return {
      t: 'hello',
      ek: this.ek,
      ak: this.ak,
      attester: 'tpm2',
      agent: 'tools-device/1',
      swPcr: this.swPcr as Hello['swPcr'],
      ...overrides,
    };
  }

  /**
   * Opens an MQTT connection as this device (or as `username`), subscribed to its `in`; `clean:
   * false` asks for a persistent session, `localAddress` picks the loopback address it comes from.
   */
  async connect(
    url: string,
    ca: Buffer,
    opts: { suffix?: string; username?: string; clean?: boolean; localAddress?: string } = {},
  ): Promise<Connected> {
    const username = opts.username ?? this.id;
    const client = mqtt.connect(url, {
      ca,
      protocolVersion: 4,
      clientId: `${username}.${opts.suffix ?? randomBytes(4).toString('hex')}`,
      username,
      reconnectPeriod: 0,
      minVersion: 'TLSv1.3',
      connectTimeout: 5000,
      clean: opts.clean ?? true,
      ...(opts.localAddress && { localAddress: opts.localAddress }),
    } as mqtt.IClientOptions);
    const inbox: GatewayMessage[] = [];
    const waiters: ((m: GatewayMessage) => void)[] = [];
    const app: { topic: string; payload: Buffer }[] = [];
    client.on('message', (topic, payload) => {
      if (topic === topics.in(username)) {
        // Every gateway message, rollout commands included: a test device may play a rollout member.
        const m = decodeFromGateway(payload);
        const w = waiters.shift();
        if (w) w(m);
        else inbox.push(m);
      } else app.push({ topic, payload });
    });
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      client.once('connect', (connack) => resolve(connack.sessionPresent));
      client.once('error', reject);
      client.once('close', () => reject(new Error('connection closed before CONNACK')));
    });
    await client.subscribeAsync(topics.in(username), { qos: 0 });
    return {
      client,
      socket: client.stream as unknown as TLSSocket,
      app,
      sessionPresent,
      // mqtt.js rejects a SUBACK of 0x80; a refusal is an answer here, not an error.
      subscribe: (filter) =>
        client.subscribeAsync(filter, { qos: 0 }).then(
          (granted) => granted[0]?.qos ?? 128,
          () => 128,
        ),
      next: (timeoutMs = 5000) =>
        new Promise<GatewayMessage>((resolve, reject) => {
          const queued = inbox.shift();
          if (queued) return resolve(queued);
          const timer = setTimeout(
            () => reject(new Error(`no gateway message within ${timeoutMs} ms`)),
            timeoutMs,
          );
          waiters.push((m) => {
            clearTimeout(timer);
            resolve(m);
          });
        }),
      close: () => client.endAsync(true).then(() => undefined),
    };
  }

  async send(c: Connected, message: Hello | Evidence | Report): Promise<void> {
    await c.client.publishAsync(
      topics.out(c.client.options.username as string),
      Buffer.from(encodeMessage(message)),
      { qos: 0 },
    );
  }

  /** TPM2_ActivateCredential through tpm2-tools, from the challenge's `activate`. */
  private async activate(a: NonNullable<Challenge['activate']>): Promise<Uint8Array> {
    const cred = new Writer().u32(CREDENTIAL_MAGIC).u32(1).tpm2b(a.blob).tpm2b(a.secret).finish();
    await writeFile(join(this.dir, 'cred.in'), cred);
    await this.tools(['tpm2_startauthsession', '--policy-session', '-S', 'session.ctx']);
    await this.tools(['tpm2_policysecret', '-S', 'session.ctx', '-c', 'e']);
    try {
      await this.tools([
        'tpm2_activatecredential',
        '-c',
        AK_HANDLE,
        '-C',
        EK_HANDLE,
        '-i',
        'cred.in',
        '-o',
        'cred.out',
        '-P',
        'session:session.ctx',
      ]);
    } finally {
      await this.swtpm.flushAll();
    }
    return new Uint8Array(await readFile(join(this.dir, 'cred.out')));
  }

  private async pcrs(indices: readonly number[]): Promise<Map<number, Uint8Array>> {
    const out = new Map<number, Uint8Array>();
    await this.tools(['tpm2_pcrread', `sha256:${indices.join(',')}`, '-o', 'pcrs.bin']);
    const bin = new Uint8Array(await readFile(join(this.dir, 'pcrs.bin')));
    for (const [i, p] of indices.entries()) out.set(p, bin.slice(i * 32, i * 32 + 32));
    return out;
  }

  /**
   * Evidence for a challenge, bound to `exporter` (by default the connection's own). `claims`
   * may alter what goes into the body before it is signed.
   */
  async evidence(
    challenge: Challenge,
    exporter: Uint8Array,
    claims: (c: Claims) => Claims = (c) => c,
  ): Promise<Evidence> {
    const activation = challenge.activate && (await this.activate(challenge.activate));
    const asked = challenge.logs.sw ?? 0;
    const from = this.restarted || asked > this.log.length ? 0 : asked;
    this.restarted = false;
    const current = this.log.at(-1);
    const base: Claims = {
      nonce: challenge.nonce,
      pcrs: await this.pcrs(challenge.pcrs),
      sw: { name: current?.name ?? 'none', version: current?.version ?? 'none' },
      logs: { sw: { from, entries: this.log.slice(from), more: false } },
      ...(activation && { activation }),
      time: Date.now(),
    };
    const body = encodeClaims(claims(base));
    const extraData = bindingDigest(exporter, body);
    await this.tools([
      'tpm2_quote',
      '-c',
      AK_HANDLE,
      '-l',
      `sha256:${challenge.pcrs.join(',')}`,
      '-q',
      toHex(extraData),
      '-m',
      'quote.msg',
      '-s',
      'quote.sig',
      '-g',
      'sha256',
    ]);
    return {
      t: 'evidence',
      round: challenge.round,
      body,
      attest: new Uint8Array(await readFile(join(this.dir, 'quote.msg'))),
      sig: new Uint8Array(await readFile(join(this.dir, 'quote.sig'))),
    };
  }

  /** Answers a challenge on `c` with honest evidence bound to that connection. */
  async answer(c: Connected, challenge: Challenge): Promise<Evidence> {
    const ev = await this.evidence(challenge, channelExporter(c.socket, challenge.nonce));
    await this.send(c, ev);
    return ev;
  }

  async stop(): Promise<void> {
    try {
      await this.swtpm.stop();
    } finally {
      removeDir(this.dir);
    }
  }
}

export function digestOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}
