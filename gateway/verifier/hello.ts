import { deviceIdentity, type Hello, type ResultCode } from '../../shared/protocol/index.ts';
import {
  AK_TEMPLATE,
  matchesTemplate,
  objectName,
  parsePublic,
  TpmFormatError,
} from '../../shared/tpm/index.ts';
import type { HelloContext } from '../connections/device-connection.ts';
import type { DeviceRecord } from '../model.ts';
import { type AdmissionPolicy, admit } from './admission.ts';

// What a `hello` establishes, checked in order: the EK names the connection's device, both keys
// parse, the AK has the shape PROTOCOL.md §3 requires, and admission lets the EK in. Pure: the
// caller answers and starts the round. What a hello says is the connection's claim, not the
// device's: it becomes part of the device's record only once that connection has attested.

export type HelloOutcome =
  | {
      readonly ok: true;
      readonly context: HelloContext;
      /** Admitted only because admission is `open` and the device was unknown: worth a loud log. */
      readonly firstUseUnderOpen: boolean;
    }
  | { readonly ok: false; readonly code: ResultCode; readonly detail: string };

const refused = (code: ResultCode, detail: string): HelloOutcome => ({ ok: false, code, detail });

export function checkHello(
  received: Hello,
  deviceId: string,
  admission: AdmissionPolicy,
  known: boolean,
): HelloOutcome {
  // The connection keeps these for its life (and the device's record, once attested): copies of
  // their own, not views into the message, which shares its buffer with a whole TLS read.
  const hello: Hello = {
    ...received,
    ek: new Uint8Array(received.ek),
    ak: new Uint8Array(received.ak),
    ...(received.ekCert && { ekCert: new Uint8Array(received.ekCert) }),
  };
  const identity = deviceIdentity(hello.ek);
  if (identity.deviceId !== deviceId) {
    return refused(
      'identity-mismatch',
      `hello.ek hashes to device id ${identity.deviceId}, but the MQTT username is ${deviceId}`,
    );
  }
  let ek: HelloContext['ek'];
  let ak: HelloContext['ak'];
  try {
    ek = parsePublic(hello.ek);
    ak = parsePublic(hello.ak);
  } catch (e) {
    if (!(e instanceof TpmFormatError)) throw e;
    return refused('malformed', `hello: ${e.message}`);
  }
  if (!matchesTemplate(ak, AK_TEMPLATE)) {
    return refused(
      'ak-unknown',
      'hello.ak is not a Vigil AK: it must be a restricted ECC P-256 ECDSA/SHA-256 signing key with fixedTPM, fixedParent and sensitiveDataOrigin',
    );
  }
  const { ekHash } = identity;
  const admitted = admit(
    { ek, ekHash, attester: hello.attester, ...(hello.ekCert && { ekCert: hello.ekCert }) },
    admission,
  );
  if (!admitted.ok) return refused(admitted.code, admitted.detail);

  return {
    ok: true,
    context: {
      hello,
      // Parsed again when asked (a credential for activation, once a device): a connection
      // keeps the EK's bytes, not a second copy of them in pieces.
      get ek() {
        return parsePublic(hello.ek);
      },
      ekName: objectName(hello.ek),
      ekHash,
      ak,
      genuineHardware: admitted.genuineHardware,
    },
    firstUseUnderOpen: admission.mode === 'open' && !known,
  };
}

/**
 * The device's record with what an attested connection's hello says (or a device's first record,
 * `enrolling`, when it is unknown): its EK, certificate, attester, agent and swPcr.
 */
export function recordFromHello(
  known: DeviceRecord | undefined,
  ctx: HelloContext,
  now: number,
): DeviceRecord {
  const base: DeviceRecord = known ?? {
    id: ctx.ekHash.slice(0, 24),
    ekHash: ctx.ekHash,
    ekPublic: ctx.hello.ek,
    attester: ctx.hello.attester,
    agent: ctx.hello.agent,
    swPcr: ctx.hello.swPcr,
    labels: {},
    posture: 'enrolling',
    reasons: [],
    firstSeen: now,
    lastSeen: now,
  };
  const { ekCert: _previous, ...rest } = base;
  return {
    ...rest,
    ekHash: ctx.ekHash,
    ekPublic: ctx.hello.ek,
    ...(ctx.hello.ekCert && { ekCert: ctx.hello.ekCert }),
    attester: ctx.hello.attester,
    agent: ctx.hello.agent,
    swPcr: ctx.hello.swPcr,
    lastSeen: now,
  };
}

/**
 * Whether the record already says what this hello says: the record was made from this very hello
 * (its bytes are the same objects), as it is at every round after a connection's first.
 */
export function saysHello(d: DeviceRecord, ctx: HelloContext): boolean {
  const h = ctx.hello;
  return (
    d.ekPublic === h.ek &&
    d.ekCert === h.ekCert &&
    d.attester === h.attester &&
    d.agent === h.agent &&
    d.swPcr === h.swPcr &&
    d.ekHash === ctx.ekHash
  );
}
