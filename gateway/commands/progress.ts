import type { BatchProgress } from '../rounds/batches.ts';

// Live progress of a batch: a redrawn bar on a terminal, and on anything else (a log, CI) one
// plain line each time the counts change, so that nothing is lost to carriage returns.

export interface ProgressView {
  update(p: BatchProgress): void;
  end(): void;
}

const settled = (p: BatchProgress) => p.answered + p.stale + p.abandoned;

function counts(p: BatchProgress): string {
  const parts = [
    `affirming ${p.appraised.affirming}`,
    p.appraised.warning && `warning ${p.appraised.warning}`,
    p.appraised.contraindicated && `contraindicated ${p.appraised.contraindicated}`,
    p.appraised.none && `none ${p.appraised.none}`,
    p.stale && `stale ${p.stale}`,
    p.abandoned && `abandoned ${p.abandoned}`,
    p.unreachable && `unreachable ${p.unreachable}`,
    `pending ${p.pending}`,
  ];
  return parts.filter(Boolean).join(', ');
}

export function progressView(stream: NodeJS.WriteStream): ProgressView {
  if (stream.isTTY) {
    const width = 30;
    let drawn = false;
    return {
      update(p) {
        const total = Math.max(1, p.issued);
        const filled = Math.round((settled(p) / total) * width);
        const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
        stream.write(`\r\x1b[2K[${bar}] ${settled(p)}/${p.issued}  ${counts(p)}`);
        drawn = true;
      },
      end() {
        if (drawn) stream.write('\n');
      },
    };
  }
  let last = '';
  return {
    update(p) {
      const line = `batch ${p.id}: ${settled(p)}/${p.issued} settled (${counts(p)})`;
      if (line !== last) stream.write(`${line}\n`);
      last = line;
    },
    end() {},
  };
}
