import * as assert from 'uvu/assert';
import type { DeviceRecord } from '../../gateway/model.ts';
import type { ErrorCode, GatewayMessage, ResultCode } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import type { Connected } from '../support/tools-device.ts';

// Helpers shared by the attack tests: what every one of them asserts is "refused, with this
// code, and nothing else changed", so that assertion lives here once.

export function expectMessage<T extends GatewayMessage['t']>(
  m: GatewayMessage,
  t: T,
): Extract<GatewayMessage, { t: T }> {
  if (m.t !== t) assert.unreachable(`expected ${t}, got ${m.t}: ${describe(m)}`);
  return m as Extract<GatewayMessage, { t: T }>;
}

function describe(m: GatewayMessage): string {
  if (m.t === 'error') return `${m.code}: ${m.detail}`;
  if (m.t === 'result') return `${m.status} [${m.reasons.join()}]`;
  return m.t;
}

/** The next message must be `error` with `code`; returns its detail. */
export async function expectError(conn: Connected, code: ErrorCode, timeoutMs = 5000): Promise<string> {
  const m = expectMessage(await conn.next(timeoutMs), 'error');
  assert.is(m.code, code, m.detail);
  return m.detail;
}

/** The next message must be a `result` refusing with `code`. */
export async function expectRefusal(conn: Connected, code: ResultCode, timeoutMs = 5000): Promise<void> {
  const m = expectMessage(await conn.next(timeoutMs), 'result');
  assert.is(m.status, 'contraindicated');
  assert.equal(m.reasons, [code]);
}

/** The parts of a device record an attack must not move, comparable with assert.equal. */
export interface DeviceState {
  readonly posture: string;
  readonly reasons: string;
  readonly ak: string;
  readonly clock: string;
  readonly swLog: string;
  readonly expires: number | undefined;
  readonly postureEvents: number;
}

export async function deviceState(gw: TestGateway, id: string): Promise<DeviceState> {
  const d: DeviceRecord | undefined = gw.gateway.fleet.get(id);
  return {
    posture: d?.posture ?? 'absent',
    reasons: (d?.reasons ?? []).join(),
    ak: d?.ak ? toHex(d.ak.name) : '',
    clock: d?.clock ? `${d.clock.resetCount}/${d.clock.restartCount}/${d.clock.clock}` : '',
    swLog: d?.swLog ? `${d.swLog.resetCount}/${d.swLog.count}/${toHex(d.swLog.pcr)}` : '',
    expires: d?.expires,
    postureEvents: (await gw.gateway.store.postureEvents(id, 10_000)).length,
  };
}

/** Asserts that the device record and its history are as before, and the store is sound. */
export async function assertUnchanged(
  gw: TestGateway,
  id: string,
  before: DeviceState,
  what: string,
): Promise<void> {
  assert.equal(await deviceState(gw, id), before, `${what}: the device record must not change`);
  assert.is(await gw.gateway.store.integrityCheck(), 'ok');
}

/** A copy of `bytes` with the byte at `at` flipped. */
export function flip(bytes: Uint8Array, at: number, mask = 0x01): Uint8Array {
  const out = new Uint8Array(bytes);
  out[at] = (out[at] ?? 0) ^ mask;
  return out;
}

/** A device's live session on the gateway (for on-demand rounds): by clientId, else the newest. */
export function onlySession(gw: TestGateway, id: string, clientId?: string) {
  const sessions = gw.gateway.connections.of(id).filter((s) => !s.closed);
  const found = clientId ? sessions.find((s) => s.clientId === clientId) : sessions.at(-1);
  assert.ok(found, `device ${id} has a live session ${clientId ?? ''}`);
  return found;
}

/**
 * Resolves with how many messages arrived on `topic` at this connection within `ms` (the
 * Connected inbox's `next()` keeps a waiter after a timeout, so "nothing came" is counted here).
 */
export async function countArrivals(conn: Connected, topic: string, ms: number): Promise<number> {
  let n = 0;
  const listener = (t: string) => {
    if (t === topic) n++;
  };
  conn.client.on('message', listener);
  await new Promise((r) => setTimeout(r, ms));
  conn.client.off('message', listener);
  return n;
}
