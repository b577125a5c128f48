import { CborError, decodeCbor } from '../cbor/decode.ts';
import { encodeCbor } from '../cbor/encode.ts';
import type { CborValue } from '../cbor/value.ts';
import { readChallenge, writeChallenge } from './challenge.ts';
import { readCommand, writeCommand } from './command.ts';
import { malformed, ProtocolError } from './errors.ts';
import { readEvidence, writeEvidence } from './evidence.ts';
import { Fields } from './fields.ts';
import { readHello, writeHello } from './hello.ts';
import type { DeviceMessage, Evidence, GatewayMessage, Hello, Message, MessageType } from './messages.ts';
import { readReport, writeReport } from './report.ts';
import { readError, readResult, writeError, writeResult } from './result.ts';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
export const MAX_DEPTH = 16;

export interface DecodeOptions {
  /** Largest payload accepted, in bytes (default 1 MiB). */
  readonly maxPayload?: number;
}

/** Decodes one CBOR item, turning every CBOR-level failure into `malformed`. */
export function decodeCborStrict(bytes: Uint8Array, where: string): CborValue {
  try {
    return decodeCbor(bytes, { maxDepth: MAX_DEPTH });
  } catch (e) {
    if (e instanceof CborError)
      throw malformed(`${where}: not one well-formed vigil/1 CBOR item: ${e.message}`);
    throw e;
  }
}

const readers = {
  hello: readHello,
  challenge: readChallenge,
  evidence: readEvidence,
  result: readResult,
  error: readError,
  command: readCommand,
  report: readReport,
} satisfies { [T in MessageType]: (f: Fields) => Extract<Message, { t: T }> };

const TYPES = Object.keys(readers) as MessageType[];
const FROM_DEVICE: readonly DeviceMessage['t'][] = ['hello', 'evidence', 'report'];
const FROM_GATEWAY: readonly GatewayMessage['t'][] = ['challenge', 'result', 'command', 'error'];

// The attestation messages alone, for a connection handler that does not take part in rollouts:
// there a report or a command is malformed ("not in this direction"), never mistaken for another
// message. A handler that does take part decodes with decodeFromDevice / decodeFromGateway.
export type AttestationDeviceMessage = Hello | Evidence;
export type AttestationGatewayMessage = Exclude<GatewayMessage, { t: 'command' }>;
const ATTESTATION_FROM_DEVICE: readonly AttestationDeviceMessage['t'][] = ['hello', 'evidence'];
const ATTESTATION_FROM_GATEWAY: readonly AttestationGatewayMessage['t'][] = ['challenge', 'result', 'error'];

function decode(bytes: Uint8Array, allowed: readonly MessageType[], opts: DecodeOptions): Message {
  const max = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (bytes.length > max) throw malformed(`payload: ${bytes.length} bytes exceeds the maximum of ${max}`);
  const f = Fields.of(decodeCborStrict(bytes, 'payload'), 'payload');
  const v = f.raw('v');
  if (v !== PROTOCOL_VERSION) {
    // Checked before `t` so that a future version's new types are reported as a version problem.
    f.uint('v', PROTOCOL_VERSION, PROTOCOL_VERSION);
  }
  const t = f.oneOf('t', TYPES);
  if (!allowed.includes(t)) {
    throw malformed(`payload.t: expected one of ${allowed.join(', ')} in this direction, got "${t}"`);
  }
  return readers[t](f);
}

/** Decodes a payload received on `vigil/v1/{id}/out`: hello, evidence or report. Throws only ProtocolError. */
export function decodeFromDevice(bytes: Uint8Array, opts: DecodeOptions = {}): DeviceMessage {
  return guard(() => decode(bytes, FROM_DEVICE, opts) as DeviceMessage);
}

/** Decodes a payload received on `vigil/v1/{id}/in`: challenge, result, command or error. Throws only ProtocolError. */
export function decodeFromGateway(bytes: Uint8Array, opts: DecodeOptions = {}): GatewayMessage {
  return guard(() => decode(bytes, FROM_GATEWAY, opts) as GatewayMessage);
}

/** Like decodeFromDevice, for hello and evidence only (AttestationDeviceMessage). */
export function decodeDeviceMessage(bytes: Uint8Array, opts: DecodeOptions = {}): AttestationDeviceMessage {
  return guard(() => decode(bytes, ATTESTATION_FROM_DEVICE, opts) as AttestationDeviceMessage);
}

/** Like decodeFromGateway, for challenge, result and error only (AttestationGatewayMessage). */
export function decodeGatewayMessage(bytes: Uint8Array, opts: DecodeOptions = {}): AttestationGatewayMessage {
  return guard(() => decode(bytes, ATTESTATION_FROM_GATEWAY, opts) as AttestationGatewayMessage);
}

/** Decodes any vigil/1 message regardless of direction. Throws only ProtocolError. */
export function decodeMessage(bytes: Uint8Array, opts: DecodeOptions = {}): Message {
  return guard(() => decode(bytes, TYPES, opts));
}

// The promise of this module is that nothing but ProtocolError escapes; a bug that throws
// anything else still surfaces as malformed rather than crashing a broker hook.
export function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw malformed(`payload: could not be decoded (${e instanceof Error ? e.message : String(e)})`);
  }
}

function body(m: Message) {
  switch (m.t) {
    case 'hello':
      return writeHello(m);
    case 'challenge':
      return writeChallenge(m);
    case 'evidence':
      return writeEvidence(m);
    case 'result':
      return writeResult(m);
    case 'error':
      return writeError(m);
    case 'command':
      return writeCommand(m);
    case 'report':
      return writeReport(m);
  }
}

export function encodeMessage(m: Message): Uint8Array {
  return encodeCbor({ v: PROTOCOL_VERSION, t: m.t, ...body(m) });
}
