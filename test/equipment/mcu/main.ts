import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { identityHash, UDS_BYTES } from '../../../shared/mcu/index.ts';
import { startMcuEmulator } from './emulator.ts';
import { DEFAULT_MODEL } from './firmware.ts';

// The MCU emulator as a process of its own, on the MCU's end of a serial line:
//   tsx test/equipment/mcu/main.ts --pty PATH --secret HEX --firmware FILE [--model NAME]
//     [--delay-ms N] [--baud N]
// Once it serves, it prints one JSON line: {"ready":true,"identity":HASH,"firmware":HEX,"model":NAME}.

const USAGE =
  'usage: tsx test/equipment/mcu/main.ts --pty PATH --secret HEX --firmware FILE [--model NAME] [--delay-ms N] [--baud N]';

function fail(message: string): never {
  process.stderr.write(`mcu-emulator: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function uint(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) fail(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        pty: { type: 'string' },
        secret: { type: 'string' },
        firmware: { type: 'string' },
        model: { type: 'string' },
        'delay-ms': { type: 'string' },
        baud: { type: 'string' },
      },
      strict: true,
    });
  } catch (e) {
    return fail((e as Error).message);
  }
})();

const path = values.pty ?? fail('--pty is required: the MCU end of the serial line');
const secretHex = values.secret ?? fail('--secret is required: the device secret');
if (!new RegExp(`^[0-9a-fA-F]{${UDS_BYTES * 2}}$`).test(secretHex)) {
  fail(
    `--secret must be ${UDS_BYTES * 2} hex digits (${UDS_BYTES} bytes), got ${secretHex.length} characters`,
  );
}
const firmwarePath = values.firmware ?? fail('--firmware is required: the firmware image file');
let image: Uint8Array;
try {
  image = new Uint8Array(readFileSync(firmwarePath));
} catch (e) {
  fail(`cannot read the firmware image ${firmwarePath}: ${(e as Error).message}`);
}
const delayMs = uint('delay-ms', values['delay-ms']);
const baudRate = uint('baud', values.baud);

const emulator = await startMcuEmulator({
  path,
  secret: new Uint8Array(Buffer.from(secretHex, 'hex')),
  image,
  model: values.model ?? DEFAULT_MODEL,
  ...(delayMs !== undefined && { delayMs }),
  ...(baudRate !== undefined && { baudRate }),
}).catch((e: Error) => fail(`cannot open ${path}: ${e.message}`));

process.stdout.write(
  `${JSON.stringify({
    ready: true,
    identity: identityHash(emulator.firmware.identityKey),
    firmware: Buffer.from(emulator.firmware.firmwareDigest).toString('hex'),
    model: values.model ?? DEFAULT_MODEL,
  })}\n`,
);

// A device whose line is gone has nothing left to serve: the process ends, saying why.
void emulator.lineClosed.then(() => {
  process.stderr.write(`mcu-emulator: the line ${path} closed\n`);
  process.exit(1);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void emulator.close().then(() => process.exit(0));
  });
}
