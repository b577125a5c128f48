import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestAgent, type TestAgent, testSoftwareReference } from '../e2e/support.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';
import { eventually, settle } from '../support/operator.ts';

// Faults under the real agent (device/), on swtpm, through a TCP proxy this test controls: the
// network cut and restored, and the TPM restarted under the running agent.

/** A loopback TCP proxy to the gateway that can cut every connection and refuse new ones. */
interface Proxy {
  readonly port: number;
  /** Connections accepted (including refused ones while cut). */
  attempts: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

async function startProxy(target: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let blocked = false;
  const proxy: Proxy = {
    port: 0,
    attempts: 0,
    cut() {
      blocked = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      blocked = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((down) => {
    proxy.attempts++;
    if (blocked) {
      down.destroy();
      return;
    }
    const up = tcpConnect({ host: '127.0.0.1', port: target });
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
      });
    }
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  Object.assign(proxy, { port: (server.address() as { port: number }).port });
  return proxy;
}

interface Ctx {
  gw?: TestGateway;
  proxy?: Proxy;
  agent?: TestAgent;
}
const it = suite<Ctx>('agent faults: network cut, TPM restart');

it.before(async (ctx) => {
  ctx.gw = await startTestGateway({
    policy: {
      admission: { mode: 'open' },
      referenceValues: { software: [testSoftwareReference()] },
      rounds: { periodicMs: 600_000, deadlineMs: 5000 },
    },
  });
  ctx.proxy = await startProxy(ctx.gw.port);
  // The agent knows the gateway only through the proxy.
  const viaProxy = Object.create(ctx.gw, { url: { value: `mqtts://localhost:${ctx.proxy.port}` } });
  ctx.agent = await startTestAgent(viaProxy);
  assert.is((await ctx.agent.nextResult(15_000)).status, 'affirming');
});

it.after(async (ctx) => {
  await ctx.agent?.stop();
  await ctx.proxy?.close();
  await ctx.gw?.stop();
});

it('network cut and restored: the agent backs off, reconnects and re-attests', async (ctx) => {
  const { gw, proxy, agent } = ctx as Required<Ctx>;
  const id = agent.agent.deviceId;
  const before = gw.gateway.connections.of(id)[0]!.clientId;
  proxy.attempts = 0;
  proxy.cut();
  await eventually(() => gw.gateway.connections.of(id).length === 0, 'the gateway sees the connection go');
  const outage = 2000;
  await settle(outage);
  const attempts = proxy.attempts;
  // Backoff (base 50 ms, cap 500 ms in the test agent): it keeps trying, but not in a tight loop.
  assert.ok(attempts >= 2, `the agent kept trying during the outage (${attempts} attempts)`);
  assert.ok(attempts <= outage / 50, `with backoff, not a tight loop (${attempts} attempts in ${outage} ms)`);
  const next = agent.nextResult(15_000);
  proxy.restore();
  const r = await next;
  assert.is(r.status, 'affirming', r.reasons.join());
  const now = gw.gateway.connections.of(id);
  assert.is(now.length, 1);
  assert.not.equal(now[0]!.clientId, before, 'a new connection, with a fresh clientId suffix');
  assert.is(gw.gateway.fleet.get(id)?.posture, 'affirming');
});

it('swtpm restarted under the running agent: the next round re-attests (log sent from 0)', async (ctx) => {
  const { gw, agent } = ctx as Required<Ctx>;
  const id = agent.agent.deviceId;
  const resetBefore = gw.gateway.fleet.get(id)!.clock!.resetCount;
  await agent.swtpm.restart();
  const next = agent.nextResult(15_000);
  gw.gateway.attestation.start(gw.gateway.connections.of(id)[0]!, 'on-demand');
  const r = await next;
  assert.is(r.status, 'affirming', `after a TPM reset: ${r.reasons.join()}`);
  const after = gw.gateway.fleet.get(id)!;
  assert.ok(after.clock!.resetCount > resetBefore, 'the reset was seen and recorded');
  // And the round after it is an ordinary incremental one.
  const again = agent.nextResult(15_000);
  gw.gateway.attestation.start(gw.gateway.connections.of(id)[0]!, 'on-demand');
  assert.is((await again).status, 'affirming');
});

it.run();
