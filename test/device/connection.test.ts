import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Agent, startAgent } from '../../device/agent.ts';
import { type AgentConfig, loadConfig, parseGatewayUrl } from '../../device/config.ts';
import { initAgent } from '../../device/init.ts';
import type { ConnectionState } from '../../device/state.ts';
import { createPki, loadTlsMaterial } from '../../gateway/setup/pki.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { testPki } from '../support/tls-pair.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { captureLogger } from './support.ts';

// What the agent refuses to talk to: a server whose certificate its pinned CA did not sign, and
// a server that offers no TLS 1.3. It keeps retrying (with backoff) and never says hello.

const ctx: { swtpm?: Swtpm; dir?: string; config?: AgentConfig; agent?: Agent | undefined } = {};
const test = suite('gateway connection refusals', ctx);

test.before(async () => {
  ctx.swtpm = await startSwtpm();
  ctx.dir = tempDir('conn');
  const ca = join(ctx.dir, 'ca.pem');
  writeFileSync(ca, testPki().ca);
  await initAgent({ dir: ctx.dir, gateway: 'mqtts://localhost:1', ca, tpm: ctx.swtpm.tcti, ek: 'ecc' });
  ctx.config = loadConfig(ctx.dir);
});

test.after.each(async () => {
  await ctx.agent?.stop();
  ctx.agent = undefined;
});

test.after(async () => {
  await ctx.swtpm?.stop();
  if (ctx.dir) removeDir(ctx.dir);
});

async function refusedBy(options: tls.TlsOptions): Promise<{ reason: string; handshakes: number }> {
  let handshakes = 0;
  const server = tls.createServer(options, (s) => {
    handshakes++;
    s.destroy();
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const { logger } = captureLogger();
    ctx.agent = await startAgent({
      dir: ctx.dir!,
      config: { ...ctx.config!, gateway: parseGatewayUrl(`mqtts://localhost:${port}`) },
      logger,
      software: { root: join(import.meta.dirname, 'fixtures/software'), name: 'fixture', version: '1' },
      reconnect: { baseMs: 10, capMs: 50 },
    });
    // The first attempt is under way; its failure arrives asynchronously, after this listener.
    let connected = false;
    const disconnected: string[] = [];
    const twice = new Promise<void>((resolve) => {
      ctx.agent!.on('state', (s: ConnectionState) => {
        if (s.status === 'connected') connected = true;
        if (s.status === 'disconnected') disconnected.push(s.reason);
        if (disconnected.length === 2) resolve();
      });
    });
    await twice;
    assert.not.ok(connected, 'never connected');
    return { reason: disconnected[0]!, handshakes };
  } finally {
    await ctx.agent?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test('a server certificate from another CA: refused, retried, never connected', async () => {
  const other = tempDir('other-ca');
  try {
    const pki = loadTlsMaterial(createPki(other, ['localhost'], 'Impostor'));
    const { reason, handshakes } = await refusedBy({ key: pki.key, cert: pki.cert });
    assert.match(reason, 'not signed by the pinned CA', reason);
    assert.is(handshakes, 0, 'no handshake completed');
  } finally {
    removeDir(other);
  }
});

test('a server without TLS 1.3: refused', async () => {
  const pki = testPki();
  const { reason, handshakes } = await refusedBy({ key: pki.key, cert: pki.cert, maxVersion: 'TLSv1.2' });
  assert.match(reason, 'does not offer TLS 1.3', reason);
  assert.is(handshakes, 0);
});

test.run();
