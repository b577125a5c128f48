import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { McuPort } from '../firmware-shims/serial/config.ts';
import { parseMcuSubmodule } from '../shared/mcu/submodule.ts';
import type { Ear } from '../shared/protocol/ear.ts';
import { DEFAULT_MODEL } from '../test/equipment/mcu/firmware.ts';
import { type McuEmulatorProcess, spawnMcuEmulator } from '../test/equipment/mcu/process.ts';
import { type PtyPair, startPtyPair } from '../test/support/pty.ts';

// The demo's MCU: the emulator as its own process on one end of a socat pseudo-terminal pair,
// the demo device's agent on the other, as a pump controller would sit on a Pi's UART. Its device
// secret is kept in the demo directory, so it is the same MCU (the same identity) every run.

export interface DemoMcu {
  /** What the agent's configuration names: slot and serial path. */
  readonly port: McuPort;
  readonly identity: string;
  readonly firmware: string;
  readonly model: string;
  stop(): Promise<void>;
}

export async function startDemoMcu(dir: string, slot: string): Promise<DemoMcu> {
  const line: PtyPair = await startPtyPair({ dir });
  let emulator: McuEmulatorProcess;
  try {
    const secretFile = join(dir, 'secret.hex');
    if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const firmwareFile = join(dir, 'firmware.bin');
    writeFileSync(firmwareFile, `vigil demo ${slot} firmware 1.0\n`);
    emulator = await spawnMcuEmulator({
      pty: line.mcuPath,
      secretHex: readFileSync(secretFile, 'utf8').trim(),
      firmwareFile,
      model: DEFAULT_MODEL,
    });
  } catch (e) {
    await line.close();
    throw e;
  }
  return {
    port: { slot, path: line.agentPath },
    identity: emulator.identity,
    firmware: emulator.firmware,
    model: emulator.model,
    async stop() {
      await emulator.stop();
      await line.close();
    },
  };
}

/** "MCU pump affirming" for each MCU submodule of an EAR. */
export function mcuNotes(ear: Ear): string[] {
  return Object.entries(ear.submods).flatMap(([name, a]) => {
    const mcu = parseMcuSubmodule(name);
    return mcu ? [`MCU ${mcu.slot} ${a.status}${a.codes ? ` [${a.codes.join(', ')}]` : ''}`] : [];
  });
}
