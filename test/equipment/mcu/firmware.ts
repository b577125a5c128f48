import { p256 } from '@noble/curves/nist.js';
import { decodeCbor } from '../../../shared/cbor/decode.ts';
import { assembleSign1, COSE_ALG } from '../../../shared/cose/sign1.ts';
import {
  attestationScalar,
  decodeMcuRequest,
  encodeAliasClaims,
  encodeEvidenceClaims,
  encodeMcuResponse,
  firmwareDigest,
  identityScalar,
  MAX_DETAIL_LENGTH,
  MAX_REQUEST_ID,
  MCU_PROTOCOL_VERSION,
  type McuErrorCode,
  type McuRequest,
  type McuResponse,
  mcuChallenge,
  pointKeyId,
} from '../../../shared/mcu/index.ts';
import { ProtocolError } from '../../../shared/protocol/errors.ts';

// What a Vigil MCU runs, as test and bench equipment: its boot ROM (DICE layer 0) at
// construction, its firmware's attestation service in `answer`. Signatures come from
// @noble/curves, pure JS as an MCU's small ECC library would be, and independent of the
// node:crypto code that verifies them on the gateway.

export interface McuFirmwareOptions {
  /** The Unique Device Secret, 32 bytes: fused in at manufacture. */
  readonly secret: Uint8Array;
  /** The firmware image the ROM measures and starts. */
  readonly image: Uint8Array;
  /** The model the ROM names in its certificate. */
  readonly model: string;
}

export const DEFAULT_MODEL = 'vigil-emu-m0';

function es256(secret: Uint8Array): (tbs: Uint8Array) => Uint8Array {
  // prehash: SHA-256 of the Sig_structure, as ES256 wants; noble signs low-S, which node accepts.
  return (tbs) => p256.sign(tbs, secret, { prehash: true });
}

export class McuFirmware {
  /** Raw identity public key. */
  readonly identityKey: Uint8Array;
  readonly firmwareDigest: Uint8Array;
  readonly attestationKey: Uint8Array;
  /** The alias certificate the ROM made at boot. */
  readonly cert: Uint8Array;
  private readonly signEvidence: (tbs: Uint8Array) => Uint8Array;
  private readonly akKid: Uint8Array;

  constructor(opts: McuFirmwareOptions) {
    // Layer 0, the ROM: identity from the secret alone, attestation key from secret and
    // measurement, the certificate binding them. Only the attestation secret survives it.
    const idSecret = identityScalar(opts.secret);
    this.identityKey = p256.getPublicKey(idSecret, false);
    this.firmwareDigest = firmwareDigest(opts.image);
    const akSecret = attestationScalar(opts.secret, this.firmwareDigest);
    this.attestationKey = p256.getPublicKey(akSecret, false);
    this.cert = assembleSign1(
      COSE_ALG.ES256,
      pointKeyId(this.identityKey),
      encodeAliasClaims({ model: opts.model, ak: this.attestationKey, fw: this.firmwareDigest }),
      es256(idSecret),
    );
    idSecret.fill(0);
    this.signEvidence = es256(akSecret);
    this.akKid = pointKeyId(this.attestationKey);
  }

  private respond(request: McuRequest): McuResponse {
    const identity = { idk: this.identityKey, cert: this.cert };
    if (request.t === 'hello') return { t: 'hello', req: request.req, ...identity };
    const challenge = mcuChallenge(request.nonce, this.identityKey);
    const ev = assembleSign1(
      COSE_ALG.ES256,
      this.akKid,
      encodeEvidenceClaims({ challenge }),
      this.signEvidence,
    );
    return { t: 'evidence', req: request.req, ...identity, ev };
  }

  /** The answer to one frame's payload: a response, or an error naming what was wrong. */
  answer(payload: Uint8Array): Uint8Array {
    let request: McuRequest;
    try {
      request = decodeMcuRequest(payload);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return encodeMcuResponse({
        t: 'error',
        ...refusal(payload),
        detail: e.detail.slice(0, MAX_DETAIL_LENGTH),
      });
    }
    return encodeMcuResponse(this.respond(request));
  }
}

/** serial.md §3: `unsupported` for another version or an unknown type, else `bad-request`; the id when readable. */
function refusal(payload: Uint8Array): { code: McuErrorCode; req?: number } {
  let m: unknown;
  try {
    m = decodeCbor(payload);
  } catch {
    return { code: 'bad-request' };
  }
  if (!(m instanceof Map)) return { code: 'bad-request' };
  const req = m.get('req');
  const id =
    typeof req === 'number' && Number.isInteger(req) && req >= 0 && req <= MAX_REQUEST_ID ? { req } : {};
  const t = m.get('t');
  const unsupported =
    m.get('v') !== MCU_PROTOCOL_VERSION || (typeof t === 'string' && t !== 'hello' && t !== 'evidence');
  return { code: unsupported ? 'unsupported' : 'bad-request', ...id };
}
