import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { decodeSign1 } from '../../shared/cose/sign1.ts';
import { decodeClaims } from '../../shared/protocol/index.ts';
import { encodeCheckquoteFiles, parsePublic, toHex } from '../../shared/tpm/index.ts';
import type { EvidenceView } from '../api/views.ts';
import { AUDIT_CHECKS, checkScript, HELPERS } from './checks.ts';

// An audit export of one stored round: what a third party needs to re-verify it without Vigil's
// code, as files in the formats their tools read (checks.ts says which tools and how). Pure: the
// command fetches the inputs and writes the files.

export interface AuditInput {
  readonly evidence: EvidenceView;
  /** GET /v1/rounds/{id}/ear. */
  readonly ear: { readonly cwt: string; readonly jwt: string; readonly kid: string };
  /** GET /v1/ear-key: a JWK with its kid. */
  readonly earKey: JsonWebKey & { readonly kid: string };
}

export type AuditFiles = ReadonlyMap<string, string | Uint8Array>;

const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const b64url = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));

/** The files of the export, by name; throws when the round cannot be exported (no AK to check with). */
export function auditFiles(input: AuditInput): AuditFiles {
  const e = input.evidence;
  if (e.ak === null)
    throw new Error(
      `round ${e.round.id}: no AK to check its quote with (the round did not keep one and device ${e.device} has none enrolled)`,
    );
  const akArea = b64(e.ak);
  const ak = parsePublic(akArea);
  const body = b64(e.body);
  const claims = decodeClaims(body);
  const quote = encodeCheckquoteFiles({
    akPublic: ak,
    attest: b64(e.attest),
    signature: b64(e.sig),
    selection: [{ hash: 'sha256', pcrs: [...e.pcrs] }],
    values: new Map([['sha256', claims.pcrs]]),
    // Not used for the files: the auditor recomputes it (checks.ts, `extradata`).
    qualifyingData: new Uint8Array(0),
  });
  const cwt = b64url(input.ear.cwt);
  const sign1 = decodeSign1(cwt);
  const earKeyPem = createPublicKey({ key: input.earKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  const tpm2b = Buffer.alloc(2 + akArea.length);
  tpm2b.writeUInt16BE(akArea.length, 0);
  tpm2b.set(akArea, 2);
  return new Map<string, string | Uint8Array>([
    ...Object.entries(quote),
    ['ak.pub', new Uint8Array(tpm2b)],
    ['body.cbor', body],
    ['nonce.bin', b64(e.nonce)],
    ['exporter.bin', b64(e.exporter)],
    [
      'pcrs.txt',
      e.pcrs.map((p) => `sha256 ${p}: ${toHex(claims.pcrs.get(p) ?? new Uint8Array(0))}\n`).join(''),
    ],
    ['ear.cwt', cwt],
    ['ear.protected', sign1.protectedBytes],
    ['ear.payload', sign1.payload],
    ['ear.sig', sign1.signature],
    ['ear.jwt', `${input.ear.jwt}\n`],
    ['ear-key.pem', earKeyPem],
    ['ear-key.jwk.json', `${JSON.stringify(input.earKey, null, 2)}\n`],
    [
      'round.json',
      `${JSON.stringify({ device: e.device, round: e.round, akSource: e.akSource }, null, 2)}\n`,
    ],
    ['check.sh', checkScript()],
    ['README', readme(input)],
  ]);
}

function readme(input: AuditInput): string {
  const e = input.evidence;
  const r = e.round;
  const when = (t: number | null) => (t === null ? '-' : new Date(t).toISOString());
  const akNote =
    e.akSource === 'round'
      ? 'the AK this round was checked against, as the round recorded it'
      : "the device's AK at export time: this round was stored before rounds kept their AK, so after a re-enrolment its quote will not verify with it";
  const checks = AUDIT_CHECKS.map(
    (c, i) =>
      `${i + 1}. ${c.title} [${c.name}]\n   ${c.explain}\n${c.commands.map((cmd) => `     ${cmd}`).join('\n')}`,
  );
  return `Vigil audit export of round ${r.id}

Device ${e.device}, reason ${r.reason}, issued ${when(r.issuedAt)}, appraised ${when(r.appraisedAt)}.
The gateway concluded: ${r.status ?? r.state}${r.codes.length ? ` (${r.codes.join(', ')})` : ''}${r.detail ? `: ${r.detail}` : ''}.

Run \`bash check.sh\` here: it runs the checks below with bash, coreutils, xxd, openssl and
tpm2-tools only, prints PASS or FAIL for each and exits 0 only when all pass. Each check in a few
lines (the shell functions they use are at the end):

${checks.join('\n\n')}

What the checks cannot show: B (exporter.bin) is a secret of the TLS connection the evidence
came on; only its two ends knew it, and this is the gateway's record of it. The checks show the
TPM holding the AK bound its quote to that B, this body and these PCR values, and that the
gateway signed the EAR it sent; that B was that connection's is the gateway's word.

Files
  quote.msg      TPMS_ATTEST the TPM signed (TPM2_Quote)
  quote.sig      TPMT_SIGNATURE over it
  quote.pcrs     the PCR values the body claims, in tpm2_quote -o format (pcrs.txt: readable)
  ak.pem, ak.pub the AK (SPKI PEM; TPM2B_PUBLIC for tpm2_print -t TPM2B_PUBLIC): ${akNote}
  body.cbor      the evidence body (CBOR claims)
  nonce.bin      the round's nonce
  exporter.bin   B, the TLS exporter value of the connection (PROTOCOL.md §4)
  ear.cwt        the EAR in the result the device received (COSE_Sign1, ES256); ear.protected,
                 ear.payload, ear.sig are its parts
  ear.jwt        the same claims as a JWT
  ear-key.pem    the gateway's EAR public key (kid ${input.earKey.kid}; JWK in ear-key.jwk.json)
  round.json     the round as the gateway stored it

Shell functions used above:
${HELPERS}
`;
}
