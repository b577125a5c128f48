import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { TpmAccess } from '../../device/tpm-access.ts';
import { type AttestationKeys, provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';

/** A pino logger whose JSON lines land in `lines`, to assert what an operator would read. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

export interface ProvisionedTpm {
  readonly swtpm: Swtpm;
  readonly access: TpmAccess;
  readonly keys: AttestationKeys;
  stop(): Promise<void>;
}

/** A private swtpm with the EK and persistent AK of PROTOCOL.md §3. */
export async function provisionedTpm(): Promise<ProvisionedTpm> {
  const swtpm = await startSwtpm();
  const access = new TpmAccess(swtpm.tcti);
  try {
    const keys = await access.run((t) => provisionAttestationKeys(t, { ek: 'ecc' }));
    return {
      swtpm,
      access,
      keys,
      async stop() {
        await access.close();
        await swtpm.stop();
      },
    };
  } catch (e) {
    await access.close();
    await swtpm.stop();
    throw e;
  }
}
