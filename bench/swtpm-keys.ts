import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortPair } from '../firmware-shims/swtpm/free-ports.ts';
import { type SwtpmProcess, startSwtpmProcess } from '../firmware-shims/swtpm/swtpm-process.ts';
import { type AttestationKeys, provisionAttestationKeys } from '../firmware-shims/tpm/provision.ts';
import { Tpm } from '../firmware-shims/tpm/tpm.ts';

// A swtpm with Vigil's EK and AK provisioned through our own TPM stack (as the agent does), for
// the figures that need a real TPM's evidence and timing.

export interface SwtpmKeys {
  readonly swtpm: SwtpmProcess;
  readonly tpm: Tpm;
  readonly keys: AttestationKeys;
  stop(): Promise<void>;
}

export async function swtpmWithKeys(): Promise<SwtpmKeys> {
  const state = mkdtempSync(join(tmpdir(), 'vigil-bench-tpm-'));
  const [port, ctrl] = await freePortPair();
  const swtpm = await startSwtpmProcess(state, port, ctrl);
  try {
    const tpm = await Tpm.open(swtpm.tcti);
    await tpm.startup();
    const keys = await provisionAttestationKeys(tpm, { ek: 'ecc' });
    return {
      swtpm,
      tpm,
      keys,
      async stop() {
        await tpm.close().catch(() => {});
        await swtpm.stop();
        rmSync(state, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await swtpm.stop();
    rmSync(state, { recursive: true, force: true });
    throw e;
  }
}
