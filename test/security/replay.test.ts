import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Challenge, channelExporter, type Evidence } from '../../shared/protocol/index.ts';
import { toHex } from '../../shared/tpm/index.ts';
import type { TestGateway } from '../support/gateway.ts';
import { settle } from '../support/operator.ts';
import { testPki } from '../support/tls-pair.ts';
import type { Connected, ToolsDevice } from '../support/tools-device.ts';
import {
  assertUnchanged,
  deviceState,
  expectError,
  expectMessage,
  expectRefusal,
  onlySession,
} from './support.ts';
import {
  answerAffirmed,
  attestedConnection,
  createDevice,
  honestRound,
  onDemandRound,
  startOpenGateway,
} from './testbed.ts';

// Replay, diversion and relay (DESIGN.md threat model; PROTOCOL.md §4): evidence is bound to a
// fresh nonce and to the exporter of the one TLS connection its round was issued on, so it is
// worth nothing at another time or on another connection, including a relay's.

const DEADLINE_MS = 1500;

interface Ctx {
  gw: TestGateway;
  device: ToolsDevice;
  /** The device's attested connection. */
  a: Connected;
  extra: Connected[];
  closers: (() => unknown)[];
}
const it = suite<Ctx>('replay, diversion and relay');

it.before(async (ctx) => {
  ctx.extra = [];
  ctx.closers = [];
  ctx.gw = await startOpenGateway({ deadlineMs: DEADLINE_MS });
  ctx.device = await createDevice();
  ctx.a = await attestedConnection(ctx.gw, ctx.device, { suffix: 'a' });
});

it.after(async (ctx) => {
  for (const c of [...(ctx.extra ?? []), ctx.a]) await c?.close().catch(() => undefined);
  for (const close of ctx.closers ?? []) await close();
  await ctx.device?.stop();
  await ctx.gw?.stop();
});

/** A second connection of the same device that sent hello; returns it and its onboard challenge. */
async function second(ctx: Ctx, suffix: string): Promise<[Connected, Challenge]> {
  const b = await ctx.device.connect(ctx.gw.url, ctx.gw.ca, { suffix });
  ctx.extra.push(b);
  await ctx.device.send(b, ctx.device.hello());
  const challenge = expectMessage(await b.next(), 'challenge');
  assert.is(challenge.activate, undefined, 'the AK is enrolled: no activation');
  return [b, challenge];
}

const withRound = (ev: Evidence, round: Uint8Array): Evidence => ({ ...ev, round });

it('a round answered twice: round-replayed, nothing changes', async (ctx) => {
  const { gw, device, a } = ctx;
  const ev = await honestRound(gw, device, a);
  const before = await deviceState(gw, device.id);
  await device.send(a, ev);
  await expectError(a, 'round-replayed');
  await assertUnchanged(gw, device.id, before, 'second answer');
});

it("round k's evidence at round k+1 on the same connection: replayed, and relabelled: binding-mismatch", async (ctx) => {
  const { gw, device, a } = ctx;
  const old = await honestRound(gw, device, a);
  const next = await onDemandRound(gw, device, a);
  const before = await deviceState(gw, device.id);
  // As it was: the round id is one this connection already settled.
  await device.send(a, old);
  await expectError(a, 'round-replayed');
  await assertUnchanged(gw, device.id, before, "round k's evidence as it was");
  // Relabelled with round k+1's id: the quote still signs k's nonce and exporter.
  await device.send(a, withRound(old, next.round));
  await expectRefusal(a, 'binding-mismatch');
  const after = await deviceState(gw, device.id);
  // Sent on the attested connection itself, the failure is the device's own statement
  // (docs/protocol.md §4, "whose failure is it"): posture changes, AK and clock do not.
  assert.is(after.posture, 'contraindicated');
  assert.equal([after.ak, after.clock, after.swLog], [before.ak, before.clock, before.swLog]);
  assert.equal((await gw.gateway.store.round(toHex(next.round)))?.codes, ['binding-mismatch']);
  // An honest round puts it right.
  await honestRound(gw, device, a);
});

it('evidence from connection A presented on connection B: round-unknown, relabelled: binding-mismatch', async (ctx) => {
  const { gw, device, a } = ctx;
  const evA = await honestRound(gw, device, a);
  const before = await deviceState(gw, device.id);
  const [b, onB] = await second(ctx, 'b');
  await device.send(b, evA);
  await expectError(b, 'round-unknown');
  await device.send(b, withRound(evA, onB.round));
  await expectRefusal(b, 'binding-mismatch');
  // B never attested and A is trusted: B's failure does not speak for the device.
  await assertUnchanged(gw, device.id, before, 'diverted evidence');
  assert.ok(a.client.connected, 'the attested connection is untouched');
  await b.close();
});

it('a nonce issued on A answered on B: round-unknown, or with B round: binding-mismatch', async (ctx) => {
  const { gw, device, a } = ctx;
  const onA = await onDemandRound(gw, device, a);
  const [b, onB] = await second(ctx, 'c');
  const before = await deviceState(gw, device.id);
  // The device answers A's challenge, but bound to B's channel (as a diverting attacker would ask).
  const diverted = await device.evidence(onA, channelExporter(b.socket, onA.nonce));
  await device.send(b, diverted);
  await expectError(b, 'round-unknown');
  await device.send(b, withRound(diverted, onB.round));
  await expectRefusal(b, 'binding-mismatch');
  await assertUnchanged(gw, device.id, before, 'diverted nonce');
  // A's round is still open and its honest answer is accepted.
  await answerAffirmed(device, a, onA);
  await b.close();
});

it('an expired round: stale at the deadline, late evidence round-expired', async (ctx) => {
  const { gw, device, a } = ctx;
  const late = await onDemandRound(gw, device, a);
  const ev = await device.evidence(late, channelExporter(a.socket, late.nonce));
  const stale = expectMessage(await a.next(DEADLINE_MS + 3000), 'error');
  assert.is(stale.code, 'stale');
  const before = await deviceState(gw, device.id);
  await device.send(a, ev);
  await expectError(a, 'round-expired');
  await assertUnchanged(gw, device.id, before, 'late evidence');
  assert.equal((await gw.gateway.store.round(toHex(late.round)))?.state, 'stale');
  await honestRound(gw, device, a);
});

/**
 * A TLS-terminating relay: its own certificate (which the honest device is made to trust), one
 * TLS connection to the device and another to the gateway, MQTT bytes copied between them. The
 * relay sees and can forward every message; the two TLS channels differ.
 */
async function startRelay(gatewayPort: number, gatewayCa: Buffer): Promise<{ port: number; close(): void }> {
  const pki = testPki();
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(
    { key: pki.key, cert: pki.cert, minVersion: 'TLSv1.3' },
    (down: tls.TLSSocket) => {
      const up = tls.connect({
        host: '127.0.0.1',
        port: gatewayPort,
        ca: gatewayCa,
        servername: 'localhost',
      });
      for (const s of [down, up]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.once('close', () => {
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up);
      up.pipe(down);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

it('a TLS-terminating relay in the middle: binding-mismatch, the attested connection undisturbed', async (ctx) => {
  const { gw, device, a } = ctx;
  const relay = await startRelay(gw.port, gw.ca);
  ctx.closers.push(() => relay.close());
  const before = await deviceState(gw, device.id);
  // The honest device trusts the relay's CA, so it connects to the relay believing it the gateway.
  const victim = await device.connect(`mqtts://localhost:${relay.port}`, testPki().ca, { suffix: 'relayed' });
  ctx.extra.push(victim);
  await device.send(victim, device.hello());
  const challenge = expectMessage(await victim.next(), 'challenge');
  const relayed = onlySession(gw, device.id, `${device.id}.relayed`);
  assert.is(relayed.clientId, `${device.id}.relayed`);
  // The gateway's exporter on its channel (to the relay) is not the device's (to the relay).
  assert.not.equal(
    toHex(relayed.link.exporter(challenge.nonce)),
    toHex(channelExporter(victim.socket, challenge.nonce)),
  );
  await device.answer(victim, challenge);
  await expectRefusal(victim, 'binding-mismatch');
  await assertUnchanged(gw, device.id, before, 'relayed evidence');
  const rec = (await gw.gateway.store.recentRounds(device.id, 1))[0];
  assert.equal(rec?.codes, ['binding-mismatch']);
  await settle(100);
  assert.ok(a.client.connected, 'the attested connection is untouched');
  assert.ok(
    gw.gateway.connections.of(device.id).find((s) => s.clientId === `${device.id}.a`)!.trustedUntil >
      Date.now(),
    'and still trusted',
  );
  relay.close();
});

it.run();
