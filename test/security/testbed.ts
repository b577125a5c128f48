import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import type { Challenge, Evidence } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { type Connected, digestOf, ToolsDevice } from '../support/tools-device.ts';
import { expectMessage, onlySession } from './support.ts';

// What the over-the-wire attack tests start from: a gateway that admits any device and knows one
// release, and a tools device running that release. Periodic rounds are far off, so every round a
// test sees is one it started; an attack then differs from an honest device in one step only.

/** The release the device runs and the gateway accepts. */
export const SOFTWARE = { name: 'tools-fw', version: '1.0', digest: digestOf('tools-fw 1.0 manifest') };

export function startOpenGateway(
  rounds: { deadlineMs: number },
  engine: { sqlite?: boolean } = {},
): Promise<TestGateway> {
  return startTestGateway({
    ...engine,
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [{ ...SOFTWARE, digest: toHex(SOFTWARE.digest) }] },
      rounds: { periodicMs: 600_000, deadlineMs: rounds.deadlineMs },
    },
  });
}

export function createDevice(): Promise<ToolsDevice> {
  return ToolsDevice.create({ software: [SOFTWARE] });
}

/** What most attack suites start from: a gateway, and one device attested on it. */
export interface Testbed {
  gw: TestGateway;
  device: ToolsDevice;
  /** The device's attested connection. */
  conn: Connected;
}

/**
 * Starts a testbed into `into` (filled as each part exists, so that closeTestbed stops what a
 * failed start left); `beforeAttest` runs on the device before its first connection.
 */
export async function openTestbed(
  into: Partial<Testbed>,
  opts: {
    beforeAttest?: (device: ToolsDevice) => Promise<void>;
    /** A test of the SQLite store itself: SQLite whatever the run's engine. */
    sqlite?: boolean;
  } = {},
): Promise<void> {
  into.gw = await startOpenGateway({ deadlineMs: 5000 }, { sqlite: opts.sqlite ?? false });
  into.device = await createDevice();
  await opts.beforeAttest?.(into.device);
  into.conn = await attestedConnection(into.gw, into.device, { suffix: 'a' });
}

export async function closeTestbed(t: Partial<Testbed>): Promise<void> {
  await t.conn?.close().catch(() => undefined);
  await t.device?.stop();
  await t.gw?.stop();
}

/** A TPM reset, after which the device measures SOFTWARE again, as it does on every boot. */
export async function reboot(device: ToolsDevice): Promise<void> {
  await device.resetTpm();
  await device.measure(SOFTWARE.name, SOFTWARE.version, SOFTWARE.digest);
}

/** Copies the device's TPM state into `snapshot` (an empty directory): the clone an attacker keeps. */
export function snapshotTpm(device: ToolsDevice, snapshot: string): void {
  for (const f of readdirSync(device.swtpm.stateDir))
    cpSync(join(device.swtpm.stateDir, f), join(snapshot, f), { recursive: true });
}

/** Puts the clone in place of the TPM's state and boots it: it counts its own next reset. */
export async function restoreTpm(device: ToolsDevice, snapshot: string): Promise<void> {
  rmSync(device.swtpm.stateDir, { recursive: true, force: true });
  cpSync(snapshot, device.swtpm.stateDir, { recursive: true });
  await reboot(device);
}

/** The TPM's clock (tpm2_readclock), ms. */
export async function readTpmClock(device: ToolsDevice): Promise<bigint> {
  const { stdout } = await device.swtpm.tpm2(['tpm2_readclock']);
  const clock = /clock:\s*(\d+)/.exec(stdout)?.[1];
  assert.ok(clock, stdout);
  return BigInt(clock);
}

/** Moves the TPM's clock forward (TPM2_ClockSet, owner authorization: empty here, as on most devices). */
export async function setTpmClock(device: ToolsDevice, ms: bigint): Promise<void> {
  await device.swtpm.tpm2(['tpm2_setclock', String(ms)]);
}

/** Answers `challenge` honestly on `conn` and expects it affirmed; returns the evidence sent. */
export async function answerAffirmed(
  device: ToolsDevice,
  conn: Connected,
  challenge: Challenge,
  what?: string,
): Promise<Evidence> {
  const ev = await device.answer(conn, challenge);
  assert.is(expectMessage(await conn.next(), 'result').status, 'affirming', what);
  return ev;
}

/** A connection of the device that sent hello and had its onboarding round affirmed. */
export async function attestedConnection(
  gw: TestGateway,
  device: ToolsDevice,
  opts: { suffix?: string } = {},
): Promise<Connected> {
  const conn = await device.connect(gw.url, gw.ca, opts);
  await device.send(conn, device.hello());
  await answerAffirmed(device, conn, expectMessage(await conn.next(), 'challenge'));
  return conn;
}

/** Starts an on-demand round on the gateway's session for `conn`; returns its challenge. */
export async function onDemandRound(
  gw: TestGateway,
  device: ToolsDevice,
  conn: Connected,
): Promise<Challenge> {
  gw.gateway.attestation.start(onlySession(gw, device.id, conn.client.options.clientId), 'on-demand');
  return expectMessage(await conn.next(), 'challenge');
}

/** An on-demand round on `conn`, answered honestly and affirmed; returns the evidence sent. */
export async function honestRound(
  gw: TestGateway,
  device: ToolsDevice,
  conn: Connected,
  what?: string,
): Promise<Evidence> {
  return answerAffirmed(device, conn, await onDemandRound(gw, device, conn), what);
}
