import { encodeCbor } from '../cbor/encode.ts';
import type { CborKey, CborValue, Encodable } from '../cbor/value.ts';
import { readMcuClaims, writeMcuClaims } from '../mcu/claims.ts';
import { decodeCborStrict, guard } from './envelope.ts';
import { malformed } from './errors.ts';
import { Fields } from './fields.ts';
import {
  type Claims,
  DIGEST_BYTES,
  type LogChunk,
  type Logs,
  NONCE_BYTES,
  PCR_COUNT,
  type SoftwareClaim,
  type SwEntry,
} from './messages.ts';

function readChunk<E>(
  f: Fields,
  expected: string,
  entry: (v: CborValue, path: string) => E | undefined,
): LogChunk<E> {
  return { from: f.uint('from'), entries: f.arrayOf('entries', expected, entry), more: f.bool('more') };
}

function readSwEntry(v: CborValue, path: string): SwEntry {
  const f = Fields.of(v, path);
  return {
    digest: f.bytes('digest', DIGEST_BYTES),
    name: f.text('name', 128),
    version: f.text('version', 128),
  };
}

function readLogs(f: Fields): Logs {
  const sw = f.optFields('sw');
  const ima = f.optFields('ima');
  const boot = f.optFields('boot');
  return {
    ...(sw && { sw: readChunk(sw, 'a software log entry', readSwEntry) }),
    ...(ima && { ima: readChunk(ima, 'an IMA log line', (v) => (typeof v === 'string' ? v : undefined)) }),
    ...(boot && {
      boot: readChunk(boot, 'a boot log chunk', (v) => (v instanceof Uint8Array ? v : undefined)),
    }),
  };
}

function readPcrValues(f: Fields): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (const [k] of f.entries()) {
    if (typeof k !== 'number' || k < 0 || k >= PCR_COUNT) {
      throw malformed(
        `${f.path}: expected PCR indices 0 to ${PCR_COUNT - 1} as keys, got ${JSON.stringify(k)}`,
      );
    }
    out.set(k, f.bytes(k, DIGEST_BYTES));
  }
  return out;
}

/** `{name, version}` of the software running now: a claim in evidence and in reports. */
export function readSoftwareClaim(f: Fields): SoftwareClaim {
  return { name: f.text('name', 128), version: f.text('version', 128) };
}

export function readClaims(f: Fields): Claims {
  const sw = f.fields('sw');
  const activation = f.optBytes('activation');
  const time = f.optUint('time');
  const mcus = readMcuClaims(f);
  return {
    nonce: f.bytes('nonce', NONCE_BYTES),
    pcrs: readPcrValues(f.fields('pcrs')),
    sw: readSoftwareClaim(sw),
    logs: readLogs(f.fields('logs')),
    ...(activation && { activation }),
    ...(time !== undefined && { time }),
    ...(mcus && { mcus }),
  };
}

function writeChunk<E, W extends Encodable>(c: LogChunk<E> | undefined, entry: (e: E) => W) {
  return c && { from: c.from, entries: c.entries.map(entry), more: c.more };
}

const same = <E extends Encodable>(e: E): E => e;

export function writeClaims(c: Claims): Encodable {
  const pcrs = new Map<CborKey, Encodable>();
  for (const [i, v] of [...c.pcrs].sort((a, b) => a[0] - b[0])) pcrs.set(i, v);
  return {
    nonce: c.nonce,
    pcrs,
    sw: { name: c.sw.name, version: c.sw.version },
    logs: {
      sw: writeChunk(c.logs.sw, (e) => ({ digest: e.digest, name: e.name, version: e.version })),
      ima: writeChunk(c.logs.ima, same),
      boot: writeChunk(c.logs.boot, same),
    },
    activation: c.activation,
    time: c.time,
    mcus: c.mcus && writeMcuClaims(c.mcus),
  };
}

/** The bytes that go into `evidence.body`; the binding hashes exactly these. */
export function encodeClaims(c: Claims): Uint8Array {
  return encodeCbor(writeClaims(c));
}

export function decodeClaims(body: Uint8Array): Claims {
  return guard(() => readClaims(Fields.of(decodeCborStrict(body, 'body'), 'body')));
}
