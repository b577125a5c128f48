import { decodeAliasCertificate } from '../../shared/mcu/certificate.ts';
import type { McuFault } from '../../shared/mcu/claims.ts';
import { identityHash } from '../../shared/mcu/keys.ts';
import { ProtocolError } from '../../shared/protocol/errors.ts';
import { McuCollector } from './collector.ts';
import type { McuPort } from './config.ts';

// What `vigil-agent mcus` shows an installer: each configured MCU's identity hash (what the
// gateway's operator admits), its model and the digest of the firmware it runs (a reference value
// for that model), from its `hello` answer. Nothing here is verified: the gateway verifies the
// certificate every round; this only reads what to register.

export type McuIdentityReport =
  | {
      readonly ok: true;
      readonly slot: string;
      readonly path: string;
      readonly identity: string;
      readonly model: string;
      readonly firmware: string;
    }
  | {
      readonly ok: false;
      readonly slot: string;
      readonly path: string;
      readonly fault: McuFault;
      readonly detail: string;
    };

/** Asks every configured MCU who it is, all at once, within `timeoutMs`. Never rejects. */
export async function identifyMcus(
  ports: readonly McuPort[],
  timeoutMs: number,
): Promise<McuIdentityReport[]> {
  const collector = new McuCollector(ports);
  try {
    const answers = await collector.hello(timeoutMs);
    return ports.map((p): McuIdentityReport => {
      const at = { slot: p.slot, path: p.path };
      const a = answers.get(p.slot)!;
      if (!a.ok) return { ok: false, ...at, fault: a.fault, detail: a.detail };
      try {
        const { model, fw } = decodeAliasCertificate(a.response.cert).value;
        const firmware = Buffer.from(fw).toString('hex');
        return { ok: true, ...at, identity: identityHash(a.response.idk), model, firmware };
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        return { ok: false, ...at, fault: 'malformed', detail: `its certificate: ${e.detail}` };
      }
    });
  } finally {
    await collector.close();
  }
}
