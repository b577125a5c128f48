import { decodeSign1 } from '../../../shared/cose/sign1.ts';
import { decodeEar } from '../../../shared/protocol/ear.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import type { Router } from '../router.ts';
import { type EvidenceView, roundView } from '../views.ts';

// A round as stored, and the attestation result it carried: the CWT exactly as the device
// received it, and the same claims as a JWT for tools that want JSON, both signed by the key at
// /v1/ear-key. Anyone can check what the gateway concluded without trusting this API. The
// round's evidence (what `vigil-gateway audit` exports) lets them check the quote as well.

const ROUND_ID = /^[0-9a-f]{32}$/;

/** GET /v1/rounds/{id}/ear. */
export interface EarView {
  /** The COSE kid of the signing key, base64url. */
  readonly kid: string;
  /** The untagged COSE_Sign1 (ES256) over the EAR's CBOR claims, base64url, as the device got it. */
  readonly cwt: string;
  /** The same claims, JSON serialization, as an ES256 JWT. */
  readonly jwt: string;
}
const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

export function roundRoutes(router: Router, ctx: ApiContext): void {
  const roundOr404 = async (id: string) => {
    const round = ROUND_ID.test(id) ? await ctx.gateway.store.round(id) : undefined;
    if (!round)
      throw new ApiError(
        'round-not-found',
        `no round ${JSON.stringify(id)}: round ids are 32 lowercase hex digits, as GET /v1/devices/:id lists them`,
      );
    return round;
  };

  router.on('GET', '/v1/rounds/:id', async ({ params }) => {
    const round = await roundOr404(params.id!);
    return { status: 200, json: { device: round.deviceId, round: roundView(round) } };
  });

  router.on('GET', '/v1/rounds/:id/ear', async ({ params }) => {
    const round = await roundOr404(params.id!);
    if (!round.ear)
      throw new ApiError(
        'ear-not-found',
        `round ${round.id} carries no EAR: it is ${round.state} (only appraised rounds have a result)`,
      );
    const cwt = decodeSign1(round.ear);
    const json: EarView = {
      kid: b64url(cwt.kid),
      cwt: b64url(round.ear),
      jwt: ctx.ear.jwt(decodeEar(cwt.payload)),
    };
    return { status: 200, json };
  });

  router.on('GET', '/v1/rounds/:id/evidence', async ({ params }) => {
    const round = await roundOr404(params.id!);
    const e = round.evidence;
    if (!e)
      throw new ApiError(
        'evidence-not-found',
        `round ${round.id} has no evidence to re-verify: it is ${round.state}${round.state === 'pending' ? ' (no answer yet)' : ' (no evidence arrived)'}`,
      );
    // Rounds stored before schema version 4 did not keep their AK: the device's enrolled AK is
    // the best there is, and the answer says where the key came from.
    const ak = e.ak ?? ctx.gateway.fleet.get(round.deviceId)?.ak?.publicArea;
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    const view: EvidenceView = {
      device: round.deviceId,
      round: roundView(round),
      nonce: b64(round.nonce),
      exporter: b64(e.exporter),
      body: b64(e.body),
      attest: b64(e.attest),
      sig: b64(e.sig),
      ak: ak ? b64(ak) : null,
      akSource: e.ak ? 'round' : ak ? 'device' : null,
      pcrs: round.pcrs,
    };
    return { status: 200, json: view };
  });

  // A JWK (RFC 7517) with its kid, so a JOSE or COSE library takes it as it is.
  router.on('GET', '/v1/ear-key', () => ({
    status: 200,
    json: {
      ...ctx.ear.publicKey().export({ format: 'jwk' }),
      kid: b64url(ctx.ear.kid),
      alg: 'ES256',
      use: 'sig',
    },
  }));
}
