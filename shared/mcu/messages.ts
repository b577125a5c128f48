import { encodeCbor } from '../cbor/encode.ts';
import { decodeCborStrict, guard } from '../protocol/envelope.ts';
import { malformed } from '../protocol/errors.ts';
import { Fields } from '../protocol/fields.ts';
import { NONCE_BYTES } from '../protocol/messages.ts';
import { P256_POINT_BYTES } from './keys.ts';

// The request/response protocol between the agent and an MCU (docs/serial.md §3): one CBOR map
// per frame, text keys, `v` = 1, `t` the type, `req` the request id the response echoes. The
// agent asks, the MCU answers; there is one request outstanding at a time.

export const MCU_PROTOCOL_VERSION = 1;
export const MAX_REQUEST_ID = 0xffff;
/** Bounds on what an MCU sends, well inside a frame: a certificate is ~200 bytes, evidence ~120. */
export const MAX_CERT_BYTES = 512;
export const MAX_EV_BYTES = 256;
export const MAX_DETAIL_LENGTH = 200;

export const MCU_ERROR_CODES = ['bad-request', 'unsupported', 'busy'] as const;
export type McuErrorCode = (typeof MCU_ERROR_CODES)[number];

export type McuRequest =
  | { readonly t: 'hello'; readonly req: number }
  | { readonly t: 'evidence'; readonly req: number; readonly nonce: Uint8Array };

/** What identifies the MCU and its firmware: the same in `hello` and `evidence` answers. */
export interface McuIdentity {
  /** Identity public key, raw uncompressed P-256 point. */
  readonly idk: Uint8Array;
  /** Alias certificate (COSE_Sign1 by the identity key). */
  readonly cert: Uint8Array;
}

export type McuResponse =
  | ({ readonly t: 'hello'; readonly req: number } & McuIdentity)
  | ({ readonly t: 'evidence'; readonly req: number; readonly ev: Uint8Array } & McuIdentity)
  | {
      readonly t: 'error';
      /** Absent when the MCU could not read the request's id. */
      readonly req?: number;
      readonly code: McuErrorCode;
      readonly detail?: string;
    };

export function encodeMcuRequest(m: McuRequest): Uint8Array {
  return encodeCbor({ v: MCU_PROTOCOL_VERSION, ...m });
}

export function encodeMcuResponse(m: McuResponse): Uint8Array {
  return encodeCbor({ v: MCU_PROTOCOL_VERSION, ...m });
}

function open(bytes: Uint8Array, path: string): Fields {
  const f = Fields.of(decodeCborStrict(bytes, path), path);
  if (f.raw('v') !== MCU_PROTOCOL_VERSION) f.uint('v', MCU_PROTOCOL_VERSION, MCU_PROTOCOL_VERSION);
  return f;
}

function boundedBytes(f: Fields, key: string, max: number): Uint8Array {
  const b = f.bytes(key);
  if (b.length > max) throw malformed(`${f.path}.${key}: ${b.length} bytes exceeds the maximum of ${max}`);
  return b;
}

function readIdentity(f: Fields): McuIdentity {
  return { idk: f.bytes('idk', P256_POINT_BYTES), cert: boundedBytes(f, 'cert', MAX_CERT_BYTES) };
}

/** The identity and the signed evidence of an `evidence` answer: what the agent carries on. */
export function readAnsweredEvidence(f: Fields): McuIdentity & { readonly ev: Uint8Array } {
  return { ...readIdentity(f), ev: boundedBytes(f, 'ev', MAX_EV_BYTES) };
}

/** Decodes a request, as the MCU does. Throws only ProtocolError `malformed`. */
export function decodeMcuRequest(bytes: Uint8Array): McuRequest {
  return guard(() => {
    const f = open(bytes, 'request');
    const t = f.oneOf('t', ['hello', 'evidence'] as const);
    const req = f.uint('req', 0, MAX_REQUEST_ID);
    return t === 'hello' ? { t, req } : { t, req, nonce: f.bytes('nonce', NONCE_BYTES) };
  });
}

/** Decodes a response, as the agent does. Throws only ProtocolError `malformed`. */
export function decodeMcuResponse(bytes: Uint8Array): McuResponse {
  return guard(() => {
    const f = open(bytes, 'response');
    const t = f.oneOf('t', ['hello', 'evidence', 'error'] as const);
    if (t === 'error') {
      const req = f.has('req') ? f.uint('req', 0, MAX_REQUEST_ID) : undefined;
      const detail = f.has('detail') ? f.text('detail', MAX_DETAIL_LENGTH) : undefined;
      return {
        t,
        ...(req !== undefined && { req }),
        code: f.oneOf('code', MCU_ERROR_CODES),
        ...(detail !== undefined && { detail }),
      };
    }
    const req = f.uint('req', 0, MAX_REQUEST_ID);
    return t === 'hello' ? { t, req, ...readIdentity(f) } : { t, req, ...readAnsweredEvidence(f) };
  });
}
