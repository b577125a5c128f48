import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { McuCollector } from '../../firmware-shims/serial/collector.ts';
import { appraiseMcus, McuReferenceValues } from '../../gateway/verifier/mcu.ts';
import { encodeCbor } from '../../shared/cbor/encode.ts';
import { decodeMcuClaims, writeMcuClaims } from '../../shared/mcu/index.ts';
import { runEmulatorMain, spawnMcuEmulator } from '../equipment/mcu/process.ts';
import { startPtyPair } from '../support/pty.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// End to end on the MCU side: the emulator as its own process on a pseudo-terminal, the agent's
// collector on the other end, the gateway's appraisal of what the collector carries.

const it = suite('MCU emulator process, collector and appraisal');

it('a round affirms; the emulator restarted with another image is mcu-firmware-changed', async () => {
  const dir = tempDir('mcu');
  const pty = await startPtyPair();
  const collector = new McuCollector([{ slot: 'pump', path: pty.agentPath }]);
  const secretHex = randomBytes(32).toString('hex');
  try {
    const v1 = join(dir, 'pump-1.0.bin');
    const v2 = join(dir, 'pump-1.0-patched.bin');
    writeFileSync(v1, 'pump firmware 1.0');
    writeFileSync(v2, 'pump firmware 1.0, patched in the field');
    const first = await spawnMcuEmulator({ pty: pty.mcuPath, secretHex, firmwareFile: v1 });
    const refs = new McuReferenceValues([{ identity: first.identity }], { [first.model]: [first.firmware] });
    const round = async () => {
      const nonce = new Uint8Array(randomBytes(32));
      // What the agent carries, through the body's codec as the gateway decodes it.
      const claims = await collector.collect(nonce, 3000);
      const carried = decodeMcuClaims(encodeCbor({ nonce, mcus: writeMcuClaims(claims) }));
      return appraiseMcus(carried, { nonce, deviceId: 'device' }, refs, ['pump']).get('pump')!;
    };
    const good = await round();
    assert.ok(good.ok, good.ok ? '' : `${good.code}: ${good.detail}`);
    assert.is(good.identity, first.identity);
    await first.stop();

    const second = await spawnMcuEmulator({ pty: pty.mcuPath, secretHex, firmwareFile: v2 });
    assert.is(second.identity, first.identity, 'the identity depends on the secret alone');
    assert.is.not(second.firmware, first.firmware);
    const changed = await round();
    assert.not.ok(changed.ok);
    if (!changed.ok) {
      assert.is(changed.code, 'mcu-firmware-changed');
      assert.is(changed.firmware, second.firmware);
    }
    await second.stop();

    const silent = await round();
    assert.not.ok(silent.ok);
    if (!silent.ok) assert.is(silent.code, 'mcu-absent', 'no emulator on the line: silence');
  } finally {
    await collector.close();
    await pty.close();
    removeDir(dir);
  }
});

it('the emulator process ends when its line is unplugged', async () => {
  const dir = tempDir('mcu');
  const pty = await startPtyPair();
  try {
    const file = join(dir, 'fw.bin');
    writeFileSync(file, 'fw');
    const mcu = await spawnMcuEmulator({ pty: pty.mcuPath, secretHex: 'ab'.repeat(32), firmwareFile: file });
    await pty.stop();
    assert.is(await mcu.exited, 1);
  } finally {
    await pty.close();
    removeDir(dir);
  }
});

it('the emulator refuses bad arguments, saying which and how', async () => {
  const run = async (args: string[]) => {
    const child = runEmulatorMain(args);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, stderr };
  };
  const noPty = await run(['--secret', '00'.repeat(32), '--firmware', '/nonexistent']);
  assert.is(noPty.code, 2);
  assert.match(noPty.stderr, /--pty is required/);
  const shortSecret = await run(['--pty', '/tmp/x', '--secret', 'abcd', '--firmware', '/nonexistent']);
  assert.match(shortSecret.stderr, /--secret must be 64 hex digits \(32 bytes\), got 4 characters/);
  const noFile = await run(['--pty', '/tmp/x', '--secret', '00'.repeat(32), '--firmware', '/nonexistent/fw']);
  assert.match(noFile.stderr, /cannot read the firmware image \/nonexistent\/fw/);
});

it.run();
