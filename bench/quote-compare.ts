import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Figure, info } from './figure.ts';
import { median } from './stats.ts';
import { swtpmWithKeys } from './swtpm-keys.ts';

const run = promisify(execFile);

// Figure 6: one TPM2_Quote on swtpm, same AK and PCRs, through our stack (firmware-shims/tpm over
// the swtpm socket) and through tpm2_quote (tpm2-tools 5.x, a new process per quote as a shell
// script would run it). Wall time per quote, median.

const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 14];

export async function quoteFigures(o: { samples: number }): Promise<Figure[]> {
  const t = await swtpmWithKeys();
  const dir = mkdtempSync(join(tmpdir(), 'vigil-bench-quote-'));
  try {
    const ours: number[] = [];
    for (let i = 0; i < o.samples + 3; i++) {
      const q = new Uint8Array(randomBytes(32));
      const t0 = performance.now();
      await t.tpm.quote(t.keys.ak.handle, q, [{ hash: 'sha256', pcrs: PCRS }]);
      if (i >= 3) ours.push(performance.now() - t0);
    }
    const tools: number[] = [];
    const env = { ...process.env, TPM2TOOLS_TCTI: t.swtpm.tcti };
    for (let i = 0; i < Math.max(3, Math.ceil(o.samples / 4)) + 1; i++) {
      const t0 = performance.now();
      // biome-ignore format: flag/value pairs
      await run('tpm2_quote', ['-c', `0x${t.keys.ak.handle.toString(16)}`, '-l', `sha256:${PCRS.join(',')}`,
        '-q', randomBytes(32).toString('hex'), '-m', join(dir, 'q.msg'), '-s', join(dir, 'q.sig'), '-g', 'sha256'], { env });
      if (i >= 1) tools.push(performance.now() - t0);
    }
    const oursMs = median(ours);
    const toolsMs = median(tools);
    return [
      info('quote on swtpm through our stack', oursMs, 'ms', { samples: ours.length, pcrs: PCRS.join(',') }),
      info('quote on swtpm through tpm2_quote (process per quote)', toolsMs, 'ms', {
        samples: tools.length,
        pcrs: PCRS.join(','),
        ratio: Number((toolsMs / oursMs).toFixed(1)),
      }),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await t.stop();
  }
}
