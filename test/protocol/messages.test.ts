import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import type { Encodable } from '../../shared/cbor/value.ts';
import {
  decodeClaims,
  decodeDeviceMessage,
  decodeFromDevice,
  decodeFromGateway,
  decodeGatewayMessage,
  decodeMessage,
  encodeClaims,
  encodeMessage,
  ProtocolError,
} from '../../shared/protocol/index.ts';
import * as sample from './samples.ts';

function expectMalformed(run: () => unknown, ...fragments: string[]) {
  try {
    run();
  } catch (e) {
    assert.instance(e, ProtocolError, `threw ${String(e)}`);
    const pe = e as ProtocolError;
    assert.is(pe.code, 'malformed');
    for (const f of fragments)
      assert.ok(pe.detail.includes(f), `detail "${pe.detail}" should mention "${f}"`);
    return pe;
  }
  return assert.unreachable('decoded without error');
}

/** The sample as a plain map we can break one key at a time. */
function asObject(m: (typeof sample.ALL)[number]): Record<string, Encodable> {
  const { t, ...rest } = m;
  const out: Record<string, Encodable> = { v: 1, t };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k] = v as Encodable;
  return out;
}

test('every message type round-trips', () => {
  for (const m of sample.ALL) assert.equal(decodeMessage(encodeMessage(m)), m, m.t);
});

test('claims round-trip, PCR map keeps integer keys', () => {
  const back = decodeClaims(encodeClaims(sample.claims));
  assert.equal(back, sample.claims);
  assert.equal([...back.pcrs.keys()], [0, 14]);
});

test('optional keys may be absent', () => {
  const { ekCert: _, ...bare } = sample.hello;
  assert.equal(decodeMessage(encodeMessage(bare)), bare);
  const { activate: __, ...plain } = sample.challenge;
  assert.equal(decodeMessage(encodeMessage(plain)), plain);
});

test('unknown keys are ignored', () => {
  const o = { ...asObject(sample.hello), future: [1, 2, { x: 'y' }] };
  assert.equal(decodeMessage(encodeCbor(o)), sample.hello);
});

test('direction: device decoder refuses gateway types and vice versa', () => {
  expectMalformed(() => decodeDeviceMessage(encodeMessage(sample.challenge)), 'payload.t', 'challenge');
  expectMalformed(() => decodeGatewayMessage(encodeMessage(sample.evidence)), 'payload.t', 'evidence');
});

test('direction with rollouts: commands only from the gateway, reports only from a device', () => {
  const command = sample.commands[0]!;
  const report = sample.reports[0]!;
  assert.equal(decodeFromGateway(encodeMessage(command)), command);
  assert.equal(decodeFromDevice(encodeMessage(report)), report);
  expectMalformed(() => decodeFromDevice(encodeMessage(command)), 'payload.t', 'command');
  expectMalformed(() => decodeFromGateway(encodeMessage(report)), 'payload.t', 'report');
  // The attestation-only decoders of a handler that takes no part in rollouts refuse both.
  expectMalformed(() => decodeDeviceMessage(encodeMessage(report)), 'payload.t', 'report');
  expectMalformed(() => decodeGatewayMessage(encodeMessage(command)), 'payload.t', 'command');
});

const label = (m: (typeof sample.ALL)[number]) =>
  m.t === 'command' ? `command ${m.op}` : m.t === 'report' ? `report ${m.state}` : m.t;

// One malformation per required key of every type: missing, then mistyped.
for (const m of sample.ALL) {
  const full = asObject(m);
  for (const key of Object.keys(full)) {
    if (key === 'v' || key === 't') continue;
    const optional =
      (m.t === 'hello' && key === 'ekCert') ||
      (m.t === 'challenge' && key === 'activate') ||
      (m.t === 'error' && key === 'round') ||
      (m.t === 'report' && (key === 'want' || key === 'code' || key === 'detail'));
    if (!optional) {
      test(`${label(m)}: missing ${key} is malformed and named`, () => {
        const { [key]: _, ...rest } = full;
        expectMalformed(() => decodeMessage(encodeCbor(rest)), `payload.${key}`, 'missing');
      });
    }
    test(`${label(m)}: mistyped ${key} is malformed and named`, () => {
      const wrong = typeof full[key] === 'string' ? 7 : 'wrong';
      expectMalformed(
        () => decodeMessage(encodeCbor({ ...full, [key]: wrong })),
        `payload.${key}`,
        'expected',
      );
    });
  }
}

test('a bstr of the wrong length names the key, the length wanted and the length that came', () => {
  const o = { ...asObject(sample.challenge), nonce: new Uint8Array(31) };
  expectMalformed(() => decodeMessage(encodeCbor(o)), 'payload.nonce', '32 bytes', '31 byte');
  const r = { ...asObject(sample.evidence), round: new Uint8Array(17) };
  expectMalformed(() => decodeMessage(encodeCbor(r)), 'payload.round', '16 bytes', '17 byte');
});

test('unknown t is malformed', () => {
  expectMalformed(() => decodeMessage(encodeCbor({ v: 1, t: 'bogus' })), 'payload.t', 'bogus');
  expectMalformed(() => decodeMessage(encodeCbor({ v: 1 })), 'payload.t', 'missing');
});

test('v other than 1 is malformed', () => {
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...asObject(sample.hello), v: 2 })),
    'payload.v',
    'uint 2',
  );
  expectMalformed(() => decodeMessage(encodeCbor({ ...asObject(sample.hello), v: '1' })), 'payload.v');
});

test('trailing bytes are malformed', () => {
  const b = encodeMessage(sample.hello);
  const extra = new Uint8Array(b.length + 1);
  extra.set(b);
  expectMalformed(() => decodeMessage(extra), 'payload', 'trailing');
});

test('nesting deeper than 16 levels is malformed', () => {
  let deep: Encodable = 0;
  for (let i = 0; i < 16; i++) deep = [deep];
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...asObject(sample.hello), x: deep })),
    'payload',
    'nesting deeper than 16',
  );
});

test('a payload over the configured maximum is malformed before it is parsed', () => {
  const b = encodeMessage(sample.evidence);
  expectMalformed(() => decodeMessage(b, { maxPayload: b.length - 1 }), 'payload', `${b.length} bytes`);
  assert.ok(decodeMessage(b, { maxPayload: b.length }));
});

test('not a map, or not CBOR at all, is malformed', () => {
  expectMalformed(() => decodeMessage(encodeCbor([1, 2])), 'payload', 'expected a map');
  expectMalformed(() => decodeMessage(new Uint8Array([0xff])), 'payload');
  expectMalformed(() => decodeMessage(new Uint8Array()), 'payload', 'truncated');
});

test('swPcr outside 8 to 15 is malformed (16 and 23 are resettable by anyone)', () => {
  for (const pcr of [0, 7, 16, 23, 24]) {
    const o = { ...asObject(sample.hello), swPcr: pcr };
    expectMalformed(() => decodeMessage(encodeCbor(o)), 'payload.swPcr', 'from 8 to 15', `uint ${pcr}`);
  }
});

test('challenge PCR list must be ascending indices 0 to 23', () => {
  for (const pcrs of [[1, 1], [3, 2], [24], [], [-1]]) {
    const o = { ...asObject(sample.challenge), pcrs };
    expectMalformed(() => decodeMessage(encodeCbor(o)), 'payload.pcrs');
  }
});

test('claims: wrong PCR value length, bad PCR key and bad log entries are named', () => {
  const base = {
    nonce: new Uint8Array(32),
    pcrs: new Map([[14, new Uint8Array(32)]]),
    sw: { name: 'a', version: '1' },
    logs: {},
  };
  assert.ok(decodeClaims(encodeCbor(base)));
  expectMalformed(
    () => decodeClaims(encodeCbor({ ...base, pcrs: new Map([[14, new Uint8Array(20)]]) })),
    'body.pcrs.14',
    '32 bytes',
  );
  expectMalformed(
    () => decodeClaims(encodeCbor({ ...base, pcrs: new Map([[24, new Uint8Array(32)]]) })),
    'body.pcrs',
    '24',
  );
  expectMalformed(
    () => decodeClaims(encodeCbor({ ...base, pcrs: { '14': new Uint8Array(32) } })),
    'body.pcrs',
    '"14"',
  );
  const badEntry = { from: 0, entries: [{ digest: new Uint8Array(32), name: 'x' }], more: false };
  expectMalformed(
    () => decodeClaims(encodeCbor({ ...base, logs: { sw: badEntry } })),
    'body.logs.sw.entries[0].version',
    'missing',
  );
  expectMalformed(
    () => decodeClaims(encodeCbor({ ...base, logs: { ima: { from: 0, entries: [1], more: false } } })),
    'body.logs.ima.entries[0]',
  );
  expectMalformed(() => decodeClaims(encodeCbor({ ...base, sw: { name: 'a' } })), 'body.sw.version');
});

const [stage, chunk, , , , operate] = sample.commands as [
  Extract<(typeof sample.commands)[number], { op: 'stage' }>,
  Extract<(typeof sample.commands)[number], { op: 'chunk' }>,
  unknown,
  unknown,
  unknown,
  Extract<(typeof sample.commands)[number], { op: 'operate' }>,
];

test('command bounds: chunk data and manifest sizes, id length, deadline, rollout token', () => {
  const chunkObj = asObject(chunk);
  assert.ok(
    decodeMessage(encodeCbor({ ...chunkObj, data: new Uint8Array(65_536) })),
    '65,536 bytes is a chunk',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...chunkObj, data: new Uint8Array(65_537) })),
    'payload.data',
    'at most 65536',
    '65537',
  );
  expectMalformed(() => decodeMessage(encodeCbor({ ...chunkObj, data: new Uint8Array(0) })), 'payload.data');
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...chunkObj, command: new Uint8Array(15) })),
    'payload.command',
    '16 bytes',
  );
  const stageObj = asObject(stage);
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...stageObj, manifest: new Uint8Array(16 * 1024 + 1) })),
    'payload.manifest',
    'at most',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...stageObj, id: new Uint8Array(17) })),
    'payload.id',
    '16 bytes',
  );
  expectMalformed(() => decodeMessage(encodeCbor({ ...stageObj, deadline: 0 })), 'payload.deadline');
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...stageObj, rollout: 'two words' })),
    'payload.rollout',
    'without spaces',
  );
  expectMalformed(() => decodeMessage(encodeCbor({ ...stageObj, op: 'reboot' })), 'payload.op', 'reboot');
});

test('operate: every key of operation is required and typed', () => {
  const o = asObject(operate);
  const op = { name: 'switch-recipe', args: new Map([['recipe', 'B']]), token: new Uint8Array(10) };
  for (const key of ['name', 'args', 'token'] as const) {
    const { [key]: _, ...rest } = op;
    expectMalformed(
      () => decodeMessage(encodeCbor({ ...o, operation: rest })),
      `payload.operation.${key}`,
      'missing',
    );
  }
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...o, operation: { ...op, args: [1] } })),
    'payload.operation.args',
    'map',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...o, operation: { ...op, token: 'x' } })),
    'payload.operation.token',
  );
});

test('report: want only with fetching and within 1 to 65,536; code only with failed or rolled-back', () => {
  const [fetching, rolledBack, staged] = sample.reports.map(asObject) as [
    Record<string, Encodable>,
    Record<string, Encodable>,
    Record<string, Encodable>,
  ];
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...fetching, want: { offset: 0, length: 65_537 } })),
    'payload.want.length',
    'from 1 to 65536',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...fetching, want: { offset: 0, length: 0 } })),
    'payload.want.length',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...fetching, want: { length: 10 } })),
    'payload.want.offset',
    'missing',
  );
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...staged, want: { offset: 0, length: 1 } })),
    'payload.want',
    '"staged"',
  );
  expectMalformed(() => decodeMessage(encodeCbor({ ...staged, code: 'busy' })), 'payload.code', '"staged"');
  expectMalformed(
    () => decodeMessage(encodeCbor({ ...rolledBack, code: 'tired' })),
    'payload.code',
    'health-failed',
  );
  const { code: _, ...bare } = rolledBack;
  assert.is((decodeMessage(encodeCbor(bare)) as { code?: string }).code, undefined, 'a code is optional');
});

test.run();
