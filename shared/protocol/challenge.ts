import type { CborKey, Encodable } from '../cbor/value.ts';
import { LOG_NAMES, type LogName, REASONS } from './codes.ts';
import { malformed } from './errors.ts';
import type { Fields } from './fields.ts';
import { type Challenge, type LogOffsets, NONCE_BYTES, PCR_COUNT, ROUND_ID_BYTES } from './messages.ts';

/** A device has at most this long to answer; longer deadlines would keep nonces alive for hours. */
export const MAX_DEADLINE_MS = 10 * 60 * 1000;

function readPcrList(f: Fields, key: string): number[] {
  const pcrs = f.arrayOf(key, `a PCR index from 0 to ${PCR_COUNT - 1}`, (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < PCR_COUNT ? v : undefined,
  );
  for (let i = 1; i < pcrs.length; i++) {
    if (pcrs[i]! <= pcrs[i - 1]!) {
      throw malformed(`${f.path}.${key}: expected strictly ascending indices, got ${pcrs.join(',')}`);
    }
  }
  if (pcrs.length === 0) throw malformed(`${f.path}.${key}: expected at least one PCR, got none`);
  return pcrs;
}

function readLogOffsets(f: Fields): LogOffsets {
  const out: Partial<Record<LogName, number>> = {};
  // Unknown log names are ignored like unknown keys: a newer gateway may ask for logs this
  // agent does not know, and it reports them absent.
  for (const name of LOG_NAMES) if (f.has(name)) out[name] = f.uint(name);
  return out;
}

export function readChallenge(f: Fields): Challenge {
  const activate = f.optFields('activate');
  return {
    t: 'challenge',
    round: f.bytes('round', ROUND_ID_BYTES),
    nonce: f.bytes('nonce', NONCE_BYTES),
    reason: f.oneOf('reason', REASONS),
    pcrs: readPcrList(f, 'pcrs'),
    logs: readLogOffsets(f.fields('logs')),
    ...(activate && { activate: { blob: activate.bytes('blob'), secret: activate.bytes('secret') } }),
    deadline: f.uint('deadline', 1, MAX_DEADLINE_MS),
  };
}

export function writeChallenge(m: Challenge) {
  const logs = new Map<CborKey, Encodable>();
  for (const name of LOG_NAMES) {
    const from = m.logs[name];
    if (from !== undefined) logs.set(name, from);
  }
  return {
    round: m.round,
    nonce: m.nonce,
    reason: m.reason,
    pcrs: m.pcrs,
    logs,
    activate: m.activate && { blob: m.activate.blob, secret: m.activate.secret },
    deadline: m.deadline,
  };
}
