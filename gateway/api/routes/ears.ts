import { decodeSign1 } from '../../../shared/cose/sign1.ts';
import { decodeEar } from '../../../shared/protocol/ear.ts';
import type { RoundRecord } from '../../model.ts';
import type { PostureStore } from '../../store/store.ts';
import type { EarSigner } from '../../verifier/ear.ts';
import { ApiError } from '../errors.ts';
import type { Router } from '../router.ts';

// A round's attestation result as the gateway signed it, for anyone who wants to check it rather
// than trust the API's JSON (the dashboard does, in the browser): the CWT the device received, the
// same claims as a JWT, the key id; and the gateway's EAR public key as a JWK.

/** A stored round with the CWT of its result, once the store keeps it. */
type RoundWithEar = RoundRecord & { readonly ear?: Uint8Array };

export interface EarView {
  /** The untagged COSE_Sign1 (ES256) over the EAR's CBOR claims, base64url. */
  readonly cwt: string;
  /** The same claims, JSON serialization, as an ES256 JWT. */
  readonly jwt: string;
  /** The COSE kid of the signing key, base64url. */
  readonly kid: string;
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

export function earRoutes(router: Router, ctx: { store: Pick<PostureStore, 'round'>; ear: EarSigner }): void {
  router.on('GET', '/v1/rounds/:id/ear', ({ params }) => {
    const round = ctx.store.round(params.id!) as RoundWithEar | undefined;
    if (!round)
      throw new ApiError(
        'round-not-found',
        `no round ${JSON.stringify(params.id)}: round ids are 32 hex digits, as GET /v1/devices/{id} lists them`,
      );
    if (!round.ear)
      throw new ApiError(
        'ear-not-found',
        `round ${round.id} has no EAR: only appraised rounds have one (this round is ${round.state})`,
      );
    const cwt = decodeSign1(round.ear);
    const json: EarView = {
      cwt: b64url(round.ear),
      jwt: ctx.ear.jwt(decodeEar(cwt.payload)),
      kid: b64url(cwt.kid),
    };
    return { status: 200, json };
  });

  router.on('GET', '/v1/ear-key', () => {
    const jwk = ctx.ear.publicKey().export({ format: 'jwk' });
    return { status: 200, json: { ...jwk, kid: b64url(ctx.ear.kid), alg: 'ES256', use: 'sig' } };
  });
}
