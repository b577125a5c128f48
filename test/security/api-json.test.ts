import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TestGateway } from '../support/gateway.ts';
import { honestServed } from './abuse-support.ts';
import { closeTestbed, openTestbed, type Testbed } from './testbed.ts';

// JSON the operator API reads, made to hurt: nested 30,000 deep (an outside check found that a
// selector like this overflowed the stack where the error message quoted it: a 500), and wide
// within the body size limit. Every route that reads a body answers 400 with a message that says
// what was wrong, and the gateway serves on.

const it = suite<Testbed>('JSON bounds of the operator API');

it.before((ctx) => openTestbed(ctx));
it.after((ctx) => closeTestbed(ctx));

async function call(gw: TestGateway, method: string, path: string, body: string) {
  const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${gw.operatorToken}`, 'content-type': 'application/json' },
    body,
  });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
}

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;

it('a value nested 30,000 deep in every body the API reads: 400, not a 500', async (ctx) => {
  const { gw, device: honest } = ctx;
  const bodies: [string, string, string][] = [
    ['POST', '/v1/batches', `{"all": ${deep(30_000)}}`],
    ['POST', '/v1/batches', `{"ids": ${deep(30_000)}}`],
    ['POST', '/v1/admissions', `{"ek": ${deep(30_000)}}`],
    ['POST', '/v1/releases', `{"name": ${deep(30_000)}}`],
    ['PATCH', `/v1/devices/${honest.id}/labels`, `{"set": {"a": ${deep(30_000)}}}`],
  ];
  for (const [method, path, body] of bodies) {
    const r = await call(gw, method, path, body);
    assert.is(r.status, 400, `${method} ${path}: ${JSON.stringify(r.json)}`);
    assert.is(r.json.error?.code, 'bad-request');
    assert.match(r.json.error!.message, /nests arrays or objects deeper than 16 levels/);
  }
  // Brackets inside strings are text, not nesting; the value is quoted short.
  const r = await call(gw, 'POST', '/v1/batches', JSON.stringify({ label: `k=${'['.repeat(1000)}` }));
  assert.is(r.status, 400);
  assert.is(r.json.error?.code, 'bad-selector', JSON.stringify(r.json));
  assert.ok(r.json.error!.message.length < 200, r.json.error!.message);
  await honestServed(gw, honest, ctx.conn, 'after the deep JSON');
});

it('wide values within the size limit: 400 with the value quoted short', async (ctx) => {
  const { gw, device: honest } = ctx;
  const wide = JSON.stringify({ all: Array.from({ length: 6000 }, (_, i) => i) });
  const r = await call(gw, 'POST', '/v1/batches', wide);
  assert.is(r.status, 400);
  assert.is(r.json.error?.code, 'bad-selector');
  assert.ok(r.json.error!.message.length < 200, r.json.error!.message);
  const big = await call(gw, 'POST', '/v1/batches', JSON.stringify({ ids: 'x'.repeat(70_000) }));
  assert.is(big.status, 413);
  await honestServed(gw, honest, ctx.conn, 'after the wide JSON');
});

it.run();
