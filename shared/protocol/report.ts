import { readSoftwareClaim } from './claims.ts';
import { REPORT_CODES } from './codes.ts';
import { malformed } from './errors.ts';
import type { Fields } from './fields.ts';
import { COMMAND_ID_BYTES, MAX_CHUNK_BYTES, REPORT_STATES, type Report } from './messages.ts';

// `report` (PROTOCOL.md §6.3). `want` belongs to `fetching` and `code` to `failed` and
// `rolled-back`: on any other state they are malformed rather than ignored, since a gateway that
// acted on a `want` of a `staged` report would be acting on a device's confusion.

export function readReport(f: Fields): Report {
  const command = f.bytes('command', COMMAND_ID_BYTES);
  const state = f.oneOf('state', REPORT_STATES);
  const sw = readSoftwareClaim(f.fields('sw'));
  const detail = f.has('detail') ? f.text('detail', 4096) : undefined;
  const base = { t: 'report' as const, command, sw, ...(detail !== undefined && { detail }) };
  if (state !== 'fetching' && f.has('want'))
    throw malformed(`${f.path}.want: only a "fetching" report asks for bytes, this one is "${state}"`);
  if (state !== 'failed' && state !== 'rolled-back' && f.has('code'))
    throw malformed(
      `${f.path}.code: only "failed" and "rolled-back" reports carry a code, this one is "${state}"`,
    );
  switch (state) {
    case 'fetching': {
      const w = f.optFields('want');
      return {
        ...base,
        state,
        ...(w && { want: { offset: w.uint('offset'), length: w.uint('length', 1, MAX_CHUNK_BYTES) } }),
      };
    }
    case 'failed':
    case 'rolled-back': {
      const code = f.has('code') ? f.oneOf('code', REPORT_CODES) : undefined;
      return { ...base, state, ...(code !== undefined && { code }) };
    }
    default:
      return { ...base, state };
  }
}

export function writeReport(m: Report) {
  return {
    command: m.command,
    state: m.state,
    want: m.state === 'fetching' && m.want ? { offset: m.want.offset, length: m.want.length } : undefined,
    sw: { name: m.sw.name, version: m.sw.version },
    code: m.state === 'failed' || m.state === 'rolled-back' ? m.code : undefined,
    detail: m.detail,
  };
}
