import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { McuCollector } from '../firmware-shims/serial/collector.ts';
import type { McuRoundResult } from '../gateway/mcus/model.ts';
import { parseMcuPolicy } from '../gateway/mcus/policy.ts';
import { Field } from '../gateway/policy/json-fields.ts';
import { McuPolicy } from '../gateway/verifier/mcu-policy.ts';
import { appraiseRoundMcus } from '../gateway/verifier/mcu-round.ts';
import { encodeCbor } from '../shared/cbor/encode.ts';
import type { McuClaims } from '../shared/mcu/claims.ts';
import { writeMcuClaims } from '../shared/mcu/index.ts';
import { spawnMcuEmulator } from '../test/equipment/mcu/process.ts';
import { startPtyPair } from '../test/support/pty.ts';
import { removeDir, tempDir } from '../test/support/tmp.ts';
import { percentile } from './stats.ts';

// What MCU sub-attesters cost a round, outside the figures `npm run bench` holds the project to:
//   node --import tsx bench/mcu.ts [ROUNDS]
// - the agent: collecting two MCUs' evidence over socat pseudo-terminals, the emulators in their
//   own processes (their signing is not counted), wall time and this process's CPU per round;
// - the body: the bytes the MCUs add to the evidence body;
// - the gateway: appraising a round's two MCUs (new nonce each round, certificates remembered),
//   and a device with none.
// A pseudo-terminal has no baud rate: on a real UART at 115200 baud 8N1 the 67-byte request and
// the 451-byte answer take 45 ms of line time, per MCU, in parallel across lines.

const rounds = Number(process.argv[2] ?? 300);
const SLOTS = ['fan', 'pump'] as const;
const fmt = (ms: number) => `${ms.toFixed(3)} ms`;

const dir = tempDir('bench-mcu');
const lines = await Promise.all(SLOTS.map(() => startPtyPair()));
const firmwareFile = join(dir, 'fw.bin');
writeFileSync(firmwareFile, 'bench firmware 1.0');
const emulators = await Promise.all(
  lines.map((l) =>
    spawnMcuEmulator({ pty: l.mcuPath, secretHex: randomBytes(32).toString('hex'), firmwareFile }),
  ),
);
const collector = new McuCollector(SLOTS.map((slot, i) => ({ slot, path: lines[i]!.agentPath })));
try {
  const wall: number[] = [];
  const cpu: number[] = [];
  const collected: { nonce: Uint8Array; claims: McuClaims }[] = [];
  for (let i = 0; i < rounds; i++) {
    const nonce = new Uint8Array(randomBytes(32));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const claims = await collector.collect(nonce, 2000);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    for (const [slot, r] of claims) if (r.kind !== 'evidence') throw new Error(`${slot}: ${r.kind}`);
    collected.push({ nonce, claims });
  }
  const sorted = (xs: number[]) => xs.slice(Math.floor(xs.length / 10)).sort((a, b) => a - b);
  const w = sorted(wall);
  const u = sorted(cpu);
  console.log(
    `agent, 2 MCUs on ptys, ${rounds} rounds: wall p50 ${fmt(percentile(w, 0.5))} p99 ${fmt(percentile(w, 0.99))}; agent CPU p50 ${fmt(percentile(u, 0.5))} p99 ${fmt(percentile(u, 0.99))}`,
  );

  const sample = collected[0]!;
  const without = encodeCbor({ nonce: sample.nonce });
  const withMcus = encodeCbor({ nonce: sample.nonce, mcus: writeMcuClaims(sample.claims) });
  const oneFault = encodeCbor({
    nonce: sample.nonce,
    mcus: writeMcuClaims(
      new Map([
        [
          'pump',
          {
            kind: 'fault',
            fault: 'timeout',
            detail: 'no answer from /dev/serial/by-id/usb-1a86_USB_Serial-if00-port0 within 8000 ms',
          },
        ],
      ]),
    ),
  });
  console.log(
    `body: 2 MCUs add ${withMcus.length - without.length} bytes; one timeout record ${oneFault.length - without.length}`,
  );

  const settings = parseMcuPolicy(
    new Field('bench', 'mcus', { firmware: { [emulators[0]!.model]: [emulators[0]!.firmware] } }),
  );
  const policy = new McuPolicy(
    settings,
    emulators.map((e) => ({ identity: e.identity, admittedAt: 1 })),
  );
  const gateway: number[] = [];
  const none: number[] = [];
  for (let pass = 0; pass < 3; pass++) {
    for (const { nonce, claims } of collected) {
      const input = { claims, nonce, deviceId: 'bench-device', labels: {} };
      const t0 = performance.now();
      const out = appraiseRoundMcus(input, policy, 'bench');
      gateway.push(performance.now() - t0);
      if (out.results.some((r: McuRoundResult) => r.status !== 'affirming'))
        throw new Error(JSON.stringify(out.results));
      const t1 = performance.now();
      appraiseRoundMcus({ ...input, claims: undefined }, policy, 'bench');
      none.push(performance.now() - t1);
    }
  }
  const g = sorted(gateway);
  const n = sorted(none);
  console.log(
    `gateway, appraising 2 MCUs per round: p50 ${fmt(percentile(g, 0.5))} p99 ${fmt(percentile(g, 0.99))}; a device without MCUs p50 ${fmt(percentile(n, 0.5))}`,
  );
} finally {
  await collector.close();
  await Promise.all(emulators.map((e) => e.stop()));
  await Promise.all(lines.map((l) => l.close()));
  removeDir(dir);
}
