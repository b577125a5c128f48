import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, configJson, parseConfig } from '../../device/config.ts';
import { mcuBudgetMs } from '../../firmware-shims/serial/budget.ts';
import { McuCollector } from '../../firmware-shims/serial/collector.ts';
import { McuConfigError, parseMcuOption } from '../../firmware-shims/serial/config.ts';
import { identityHash } from '../../shared/mcu/index.ts';
import { startMcuEmulator } from '../equipment/mcu/emulator.ts';
import { startPtyPair } from '../support/pty.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

// The agent's side of its MCUs before any round: agent.json `mcus`, `init --mcu`, the time a
// round gives them, and `vigil-agent mcus` asking a real emulator on a pseudo-terminal who it is.

const it = suite('agent MCU configuration, budget and `vigil-agent mcus`');
const CLI = join(import.meta.dirname, '../../device/cli.ts');
const minimal = { version: 1, gateway: 'mqtts://gw.example', ca: 'ca.pem', tpm: 'device:/dev/tpmrm0' };

function agentCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { env: { ...process.env, NO_COLOR: '1' }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
    );
  });
}

it('the MCUs get the deadline less a reserve for the quote: a quarter, 250 ms to 2 s', () => {
  assert.equal(
    [10_000, 2000, 1000, 900, 300, 100, 60_000].map(mcuBudgetMs),
    [8000, 1500, 750, 650, 50, 0, 58_000],
  );
});

it('--mcu SLOT=PATH[@BAUD], refused with what was wrong', () => {
  assert.equal(parseMcuOption('pump=/dev/serial/by-id/usb-1a86-if00'), {
    slot: 'pump',
    path: '/dev/serial/by-id/usb-1a86-if00',
  });
  assert.equal(parseMcuOption('fan-2=/dev/ttyAMA1@9600'), {
    slot: 'fan-2',
    path: '/dev/ttyAMA1',
    baudRate: 9600,
  });
  const refused = (text: string, message: RegExp) => {
    assert.throws(
      () => parseMcuOption(text),
      (e: Error) => e instanceof McuConfigError && message.test(e.message),
    );
  };
  refused('pump', /--mcu "pump": expected SLOT=PATH or SLOT=PATH@BAUD/);
  refused('Pump=/dev/ttyAMA0', /--mcu "Pump=\/dev\/ttyAMA0"\.slot: expected 1 to 32 characters .*got "Pump"/);
  refused('pump=/dev/ttyAMA0@1234', /\.baudRate: expected one of 9600, .*got 1234/);
});

it('agent.json mcus: read, written back the same, refused naming the file and the entry', () => {
  const mcus = [
    { slot: 'pump', path: '/dev/ttyUSB0', baudRate: 57_600 },
    { slot: 'fan', path: '/dev/ttyUSB1' },
  ];
  const c = parseConfig({ ...minimal, mcus }, '/var/lib/vigil-agent');
  assert.equal(c.mcus, mcus);
  assert.equal(parseConfig(configJson(c), '/elsewhere'), c);
  assert.not.ok('mcus' in configJson(parseConfig(minimal, '/d')), 'no MCUs, no key');
  const bad = (value: unknown, message: RegExp) =>
    assert.throws(
      () => parseConfig({ ...minimal, mcus: value }, '/d', 'agent.json'),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
    );
  bad({ slot: 'pump' }, /^agent\.json: mcus: expected an array/);
  bad([mcus[0], { ...mcus[0], path: '/dev/ttyUSB9' }], /^agent\.json: mcus\[1\]\.slot: "pump" is used twice/);
  bad([{ slot: 'pump', path: '' }], /^agent\.json: mcus\[0\]\.path: expected the serial device path/);
  bad([{ slot: 'pump', path: '/dev/x', baud: 9600 }], /mcus\[0\]: unknown key\(s\) baud/);
});

it('a round that leaves no time for its MCUs reports each a timeout without touching the line', async () => {
  const collector = new McuCollector([{ slot: 'pump', path: '/dev/nonexistent-vigil-mcu' }]);
  const claims = await collector.collect(new Uint8Array(32), 0);
  assert.equal(claims.get('pump'), {
    kind: 'fault',
    fault: 'timeout',
    detail: "the round's deadline leaves no time to ask the MCU on /dev/nonexistent-vigil-mcu",
  });
  await collector.close();
});

it('`vigil-agent mcus` prints each MCU’s identity, model and firmware and what to admit', async () => {
  const dir = tempDir('agent');
  const line = await startPtyPair();
  const image = new TextEncoder().encode('pump firmware 1.0');
  const mcu = await startMcuEmulator({
    path: line.mcuPath,
    secret: new Uint8Array(randomBytes(32)),
    image,
    model: 'acme-pump-r2',
  });
  try {
    const mcus = [
      { slot: 'pump', path: line.agentPath },
      { slot: 'fan', path: `${line.agentPath}-unplugged` },
    ];
    writeFileSync(join(dir, 'agent.json'), JSON.stringify({ ...minimal, mcus }));
    const out = await agentCli(['mcus', '--dir', dir]);
    assert.is(out.code, 1, 'one MCU did not answer');
    const identity = identityHash(mcu.firmware.identityKey);
    const firmware = Buffer.from(mcu.firmware.firmwareDigest).toString('hex');
    assert.match(
      out.stdout,
      `pump (${line.agentPath}): model acme-pump-r2\n  identity  ${identity}\n  firmware  ${firmware}`,
    );
    assert.match(out.stdout, /fan \(.*-unplugged\): absent: cannot open/);
    assert.match(out.stdout, `vigil-gateway mcu admit ${identity} --device DEVICE_ID --note pump`);
    const usage = await agentCli(['init', '--mcu', 'Pump=/dev/ttyUSB0', '--dir', dir]);
    assert.is(usage.code, 2);
    assert.match(usage.stderr, /--mcu "Pump=\/dev\/ttyUSB0"\.slot: expected 1 to 32 characters/);
    writeFileSync(join(dir, 'agent.json'), JSON.stringify(minimal));
    const none = await agentCli(['mcus', '--dir', dir]);
    assert.is(none.code, 1);
    assert.match(
      none.stderr,
      /agent\.json configures no MCU: add them with "vigil-agent init \.\.\. --mcu SLOT=PATH"/,
    );
  } finally {
    await mcu.close();
    await line.close();
    removeDir(dir);
  }
});

it.run();
