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

export function startOpenGateway(rounds: { deadlineMs: number }): Promise<TestGateway> {
  return startTestGateway({
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

/** A TPM reset, after which the device measures SOFTWARE again, as it does on every boot. */
export async function reboot(device: ToolsDevice): Promise<void> {
  await device.resetTpm();
  await device.measure(SOFTWARE.name, SOFTWARE.version, SOFTWARE.digest);
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
