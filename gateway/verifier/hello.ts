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
// caller answers, stores and starts the round.

export type HelloOutcome =
  | {
      readonly ok: true;
      readonly context: HelloContext;
      /** The device's record as of this hello: new (enrolling) or the known one updated. */
      readonly device: DeviceRecord;
      /** Admitted only because admission is `open` and the device was unknown: worth a loud log. */
      readonly firstUseUnderOpen: boolean;
    }
  | { readonly ok: false; readonly code: ResultCode; readonly detail: string };

const refused = (code: ResultCode, detail: string): HelloOutcome => ({ ok: false, code, detail });

export function checkHello(
  hello: Hello,
  deviceId: string,
  admission: AdmissionPolicy,
  known: DeviceRecord | undefined,
  now: number,
): HelloOutcome {
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

  const device = {
    ...(known ?? { id: deviceId, labels: {}, posture: 'enrolling', reasons: [], firstSeen: now }),
    ekHash,
    ekPublic: hello.ek,
    ...(hello.ekCert && { ekCert: hello.ekCert }),
    attester: hello.attester,
    agent: hello.agent,
    swPcr: hello.swPcr,
    lastSeen: now,
  } as DeviceRecord;
  return {
    ok: true,
    context: {
      hello,
      ek,
      ekName: objectName(hello.ek),
      ekHash,
      ak,
      genuineHardware: admitted.genuineHardware,
    },
    device,
    firstUseUnderOpen: admission.mode === 'open' && known === undefined,
  };
}
