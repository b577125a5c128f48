import { execFile } from 'node:child_process';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { channelExporter } from '../../shared/protocol/index.ts';
import { startTestGateway, type TestGateway } from '../support/gateway.ts';

// TLS 1.3 only, and no resumption (PROTOCOL.md §1): attestation never carries over between
// connections, because every connection has its own handshake and so its own exporter.

const run = promisify(execFile);
const it = suite<{ gw: TestGateway }>('TLS version and resumption');

it.before(async (ctx) => {
  ctx.gw = await startTestGateway();
});

it.after(async (ctx) => {
  await ctx.gw?.stop();
});

function connect(gw: TestGateway, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: gw.port, ca: gw.ca, servername: 'localhost', ...opts });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

it('TLS 1.2 refused (node client capped at 1.2)', async ({ gw }) => {
  let error: Error | undefined;
  try {
    const s = await connect(gw, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
    s.destroy();
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error, 'the handshake must fail');
  assert.match(String((error as { code?: string }).code ?? error.message), /PROTOCOL_VERSION|VERSION|alert/i);
});

it('TLS 1.2 refused (openssl s_client -tls1_2)', async ({ gw }) => {
  const out = await run('openssl', ['s_client', '-connect', `127.0.0.1:${gw.port}`, '-tls1_2', '-brief'], {
    timeout: 10_000,
  }).then(
    (r) => ({ ok: true, text: r.stdout + r.stderr }),
    (e: { stdout?: string; stderr?: string }) => ({ ok: false, text: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );
  assert.not.ok(out.ok, out.text);
  assert.match(out.text, /alert protocol version|wrong version|no protocols available|unsupported protocol/i);
});

it('session resumption refused: an offered session is never reused, exporters differ', async ({ gw }) => {
  const first = await connect(gw, { minVersion: 'TLSv1.3' });
  // TLS 1.3 tickets arrive after the handshake; give the server the chance to send any.
  const session = await new Promise<Buffer | undefined>((resolve) => {
    first.once('session', (s: Buffer) => resolve(s));
    setTimeout(() => resolve(undefined), 500);
  });
  const nonce = new Uint8Array(32);
  const e1 = Buffer.from(channelExporter(first, nonce)).toString('hex');
  first.destroy();
  assert.ok(session, 'the client holds a ticket to offer (Node cannot make OpenSSL send none)');
  const second = await connect(gw, { minVersion: 'TLSv1.3', ...(session && { session }) });
  assert.is(second.isSessionReused(), false, 'the gateway performed a full handshake');
  const e2 = Buffer.from(channelExporter(second, nonce)).toString('hex');
  assert.not.equal(e1, e2, 'a new connection has a new exporter');
  second.destroy();
});

it.run();
