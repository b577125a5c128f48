import { timingSafeEqual } from 'node:crypto';
import { digestOf } from '../digest.ts';

// PROTOCOL.md §4. The exporter value B is secret to the two ends of one TLS connection and
// differs on every other connection, so evidence whose quote signs a digest of B cannot be
// replayed, relayed or diverted; hashing SHA-256(body) in signs the claims through the quote.

export const EXPORTER_LABEL = 'EXPERIMENTAL-vigil-attestation-v1';
export const EXPORTER_BYTES = 32;
const DOMAIN = Buffer.from('vigil/1\0', 'latin1');

/** The subset of a TLSSocket the binding needs (both node:tls ends have it). */
export interface KeyingMaterialSource {
  exportKeyingMaterial(length: number, label: string, context: Buffer): Buffer;
}

/** B = TLS-Exporter(label, context = nonce, 32): call only after the handshake completed. */
export function channelExporter(socket: KeyingMaterialSource, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(
    socket.exportKeyingMaterial(
      EXPORTER_BYTES,
      EXPORTER_LABEL,
      Buffer.from(nonce.buffer, nonce.byteOffset, nonce.length),
    ),
  );
}

/** extraData = SHA-256("vigil/1" || 0x00 || B || SHA-256(body)): the quote's qualifying data. */
export function bindingDigest(exporter: Uint8Array, body: Uint8Array): Uint8Array {
  if (exporter.length !== EXPORTER_BYTES) {
    throw new RangeError(`exporter value must be ${EXPORTER_BYTES} bytes, got ${exporter.length}`);
  }
  return new Uint8Array(digestOf('sha256', DOMAIN, exporter, digestOf('sha256', body)));
}

/** Constant-time comparison for binding values, nonces and secrets (length is not secret). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
