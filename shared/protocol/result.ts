import { ERROR_CODES, RESULT_CODES, STATUSES } from './codes.ts';
import type { Fields } from './fields.ts';
import { type ErrorMessage, type Result, ROUND_ID_BYTES } from './messages.ts';

export function readResult(f: Fields): Result {
  return {
    t: 'result',
    round: f.bytes('round', ROUND_ID_BYTES),
    status: f.oneOf('status', STATUSES),
    reasons: f.arrayOf('reasons', `a result code (${RESULT_CODES.join(', ')})`, (v) =>
      typeof v === 'string' && (RESULT_CODES as readonly string[]).includes(v)
        ? (v as (typeof RESULT_CODES)[number])
        : undefined,
    ),
    expires: f.uint('expires'),
    ear: f.bytes('ear'),
  };
}

export function writeResult(m: Result) {
  return { round: m.round, status: m.status, reasons: m.reasons, expires: m.expires, ear: m.ear };
}

export function readError(f: Fields): ErrorMessage {
  const round = f.optBytes('round', ROUND_ID_BYTES);
  return {
    t: 'error',
    code: f.oneOf('code', ERROR_CODES),
    detail: f.text('detail', 4096),
    ...(round && { round }),
  };
}

export function writeError(m: ErrorMessage) {
  return { code: m.code, detail: m.detail, round: m.round };
}
