import { isSlotName, MAX_MCUS } from '../../shared/mcu/claims.ts';

// The `mcus` entry of agent.json: which serial ports have an MCU attester, and under which slot
// name each is reported (the name of its submodule in the gateway's results):
//   "mcus": [{ "slot": "pump", "path": "/dev/serial/by-id/usb-…", "baudRate": 115200 }]
// and the same on the command line, `vigil-agent init --mcu pump=/dev/serial/by-id/usb-…@115200`.

export interface McuPort {
  readonly slot: string;
  /** The serial device; a stable name (/dev/serial/by-id/…) survives replugging. */
  readonly path: string;
  readonly baudRate?: number;
}

/** Thrown for a configuration that cannot be used, saying what and how to fix it. */
export class McuConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'McuConfigError';
  }
}

const BAUD_RATES = [9600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600, 1_000_000];

/** One entry, `at` naming it in errors; repeated slots are the list's to find. */
function parseMcuPort(entry: unknown, at: string): McuPort {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new McuConfigError(`${at}: expected an object {slot, path, baudRate?}`);
  }
  const { slot, path, baudRate, ...rest } = entry as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw new McuConfigError(`${at}: unknown key(s) ${unknown.join(', ')}: expected slot, path, baudRate`);
  }
  if (typeof slot !== 'string' || !isSlotName(slot)) {
    throw new McuConfigError(
      `${at}.slot: expected 1 to 32 characters of [a-z0-9-] starting with a letter or digit, got ${JSON.stringify(slot)}`,
    );
  }
  if (typeof path !== 'string' || path.length === 0) {
    throw new McuConfigError(
      `${at}.path: expected the serial device path, e.g. /dev/ttyAMA0, got ${JSON.stringify(path)}`,
    );
  }
  if (baudRate !== undefined && !BAUD_RATES.includes(baudRate as number)) {
    throw new McuConfigError(
      `${at}.baudRate: expected one of ${BAUD_RATES.join(', ')}, got ${JSON.stringify(baudRate)}`,
    );
  }
  return { slot, path, ...(baudRate !== undefined && { baudRate: baudRate as number }) };
}

export function parseMcuPorts(value: unknown, where = 'mcus'): McuPort[] {
  if (!Array.isArray(value)) {
    throw new McuConfigError(`${where}: expected an array of {slot, path, baudRate?}, got ${typeof value}`);
  }
  if (value.length > MAX_MCUS) {
    throw new McuConfigError(
      `${where}: ${value.length} MCUs configured; at most ${MAX_MCUS} are carried per round`,
    );
  }
  const seen = new Set<string>();
  return value.map((entry: unknown, i): McuPort => {
    const port = parseMcuPort(entry, `${where}[${i}]`);
    if (seen.has(port.slot)) {
      throw new McuConfigError(`${where}[${i}].slot: "${port.slot}" is used twice: give each MCU its own`);
    }
    seen.add(port.slot);
    return port;
  });
}

/** One `--mcu SLOT=PATH[@BAUD]` option (`vigil-agent init`), by the rules of an `mcus` entry. */
export function parseMcuOption(text: string): McuPort {
  const m = /^([^=]*)=(.+?)(?:@(\d+))?$/.exec(text);
  if (!m) {
    throw new McuConfigError(
      `--mcu ${JSON.stringify(text)}: expected SLOT=PATH or SLOT=PATH@BAUD, e.g. pump=/dev/serial/by-id/usb-…@115200`,
    );
  }
  const [, slot, path, baud] = m;
  return parseMcuPort(
    { slot, path, ...(baud !== undefined && { baudRate: Number(baud) }) },
    `--mcu ${JSON.stringify(text)}`,
  );
}
