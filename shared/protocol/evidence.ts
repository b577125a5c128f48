import type { Fields } from './fields.ts';
import { type Evidence, ROUND_ID_BYTES } from './messages.ts';

export function readEvidence(f: Fields): Evidence {
  return {
    t: 'evidence',
    round: f.bytes('round', ROUND_ID_BYTES),
    body: f.bytes('body'),
    attest: f.bytes('attest'),
    sig: f.bytes('sig'),
  };
}

export function writeEvidence(m: Evidence) {
  return { round: m.round, body: m.body, attest: m.attest, sig: m.sig };
}
