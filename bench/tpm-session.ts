import { randomBytes } from 'node:crypto';
import { openTransport } from '../firmware-shims/tpm/tcti.ts';
import { Tpm } from '../firmware-shims/tpm/tpm.ts';
import type { TpmTransport } from '../firmware-shims/tpm/transport.ts';
import { makeCredential } from '../shared/tpm/credential.ts';
import { type Figure, info } from './figure.ts';
import { median } from './stats.ts';
import { type SwtpmKeys, swtpmWithKeys } from './swtpm-keys.ts';
import { printTable } from './table.ts';

// What protecting the TPM bus costs an agent round, on swtpm: the same round (PCR_Read of the
// quoted PCRs, then TPM2_Quote; onboarding adds the EK and TPM2_ActivateCredential) with the bus
// in the clear, and in a salted HMAC session started per command, per round, or once for the
// connection (the Tpm's default). Per round: wall time (median), TPM commands (what a discrete
// TPM on SPI pays for, each command being milliseconds there), and the agent's own CPU (median).
//
//   node --import tsx bench/tpm-session.ts [rounds]

const PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 14];
const SELECTION = [{ hash: 'sha256' as const, pcrs: PCRS }];

type Mode = 'clear' | 'per command' | 'per round' | 'per connection';
type Round = 'periodic' | 'onboarding';

function counting(inner: TpmTransport): TpmTransport & { commands: number } {
  return {
    commands: 0,
    description: inner.description,
    send(command) {
      this.commands++;
      return inner.send(command);
    },
    close: () => inner.close(),
  };
}

async function oneRound(tpm: Tpm, t: SwtpmKeys, mode: Mode, round: Round): Promise<void> {
  const step = async <T>(op: () => Promise<T>): Promise<T> => {
    const result = await op();
    if (mode === 'per command') await tpm.endBusSession();
    return result;
  };
  if (round === 'onboarding') {
    const credential = randomBytes(32);
    const made = makeCredential(t.keys.ek.public, t.keys.ak.name, credential);
    const ek = await tpm.createPrimaryEk(t.keys.ek.kind);
    try {
      await step(() => tpm.activateCredential(t.keys.ak.handle, ek.handle, made.blob, made.secret));
    } finally {
      await tpm.flush(ek.handle);
    }
  }
  await step(() => tpm.pcrRead(PCRS));
  await step(() => tpm.quote(t.keys.ak.handle, randomBytes(32), SELECTION));
  if (mode === 'per round') await tpm.endBusSession();
}

async function measure(t: SwtpmKeys, mode: Mode, round: Round, rounds: number) {
  const transport = counting(openTransport(t.swtpm.tcti));
  const tpm = new Tpm(transport, undefined, { pinnedEk: t.tpm.pinnedEk!, protectBus: mode !== 'clear' });
  try {
    // The first round of a connection starts its session: reported apart, not in the steady state.
    const c0 = transport.commands;
    const f0 = performance.now();
    await oneRound(tpm, t, mode, round);
    const firstMs = performance.now() - f0;
    const firstCommands = transport.commands - c0;
    const wall: number[] = [];
    const cpu: number[] = [];
    const c1 = transport.commands;
    for (let i = 0; i < rounds; i++) {
      const s = performance.now();
      const c = process.cpuUsage();
      await oneRound(tpm, t, mode, round);
      const used = process.cpuUsage(c);
      wall.push(performance.now() - s);
      cpu.push((used.user + used.system) / 1000);
    }
    return {
      ms: median(wall),
      commands: (transport.commands - c1) / rounds,
      cpuMs: median(cpu),
      firstMs,
      firstCommands,
    };
  } finally {
    await tpm.close();
  }
}

export async function tpmSessionFigures(o: { rounds: number }): Promise<Figure[]> {
  const t = await swtpmWithKeys();
  try {
    const figures: Figure[] = [];
    // swtpm's first commands and our first crypto calls are slow: warm both up before measuring.
    for (const mode of ['clear', 'per command', 'per round', 'per connection'] as const)
      await measure(t, mode, 'onboarding', 10);
    for (const round of ['periodic', 'onboarding'] as const) {
      const clear = await measure(t, 'clear', round, o.rounds);
      for (const mode of ['clear', 'per command', 'per round', 'per connection'] as const) {
        const m = mode === 'clear' ? clear : await measure(t, mode, round, o.rounds);
        const label = mode === 'clear' ? 'bus in the clear' : `salted session ${mode}`;
        figures.push(
          info(`${round} round on swtpm, ${label}`, m.ms, 'ms', {
            tpmCommands: m.commands,
            extraCommands: m.commands - clear.commands,
            agentCpuMs: Number(m.cpuMs.toFixed(3)),
            firstRoundMs: Number(m.firstMs.toFixed(2)),
            firstRoundCommands: m.firstCommands,
            rounds: o.rounds,
            pcrs: PCRS.join(','),
          }),
        );
      }
    }
    return figures;
  } finally {
    await t.stop();
  }
}

if (process.argv[1]?.endsWith('tpm-session.ts')) {
  const rounds = Number(process.argv[2] ?? 100);
  const figures = await tpmSessionFigures({ rounds });
  process.stdout.write(printTable(figures));
  for (const f of figures)
    process.stdout.write(
      `${f.name}: ${f.tpmCommands} TPM commands/round (+${f.extraCommands}), agent CPU ${f.agentCpuMs} ms/round, first round ${f.firstRoundMs} ms / ${f.firstRoundCommands} commands\n`,
    );
}
