import { read } from 'node:fs';
import { promisify } from 'node:util';
import type { SerialPort } from 'serialport';

// Opening a serial port for the MCU link, and one fix under it. serialport 13's Unix binding
// reads again at once when read() returns 0 bytes; on Linux that is what a tty whose other end
// hung up returns (a USB adapter pulled, a pty's master closed), so a hang-up that lands while
// no poll is pending turns into a busy loop that never yields its promise chain: one core at
// 100% and memory growing by the second, the port never reported closed. Here a 0-byte read is a
// disconnect: the stream closes the port and emits `close`, as for any other line failure.

const readAsync = promisify(read);

interface UnixPortBinding {
  fd: number | null;
  readonly poller: { once(event: 'readable', cb: (err?: Error | null) => void): unknown };
  read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
}

function isUnixPortBinding(b: unknown): b is UnixPortBinding {
  const c = b as Partial<UnixPortBinding> | undefined;
  return typeof c?.fd === 'number' && typeof c.poller?.once === 'function';
}

/** What the binding throws for a read ended by close(): the stream ignores it (not a disconnect). */
function canceled(): Error {
  return Object.assign(new Error('Port is not open'), { canceled: true });
}

function hangUpOnEof(binding: UnixPortBinding, path: string): void {
  binding.read = async (buffer, offset, length) => {
    for (;;) {
      const fd = binding.fd;
      if (fd === null) throw canceled();
      let bytesRead: number;
      try {
        ({ bytesRead } = await readAsync(fd, buffer, offset, length, null));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw e;
        // Closed while the read was in flight: its poller is destroyed, and polling a destroyed
        // poller crashes the process (a native handle), so stop here.
        if (binding.fd === null) throw canceled();
        await new Promise<void>((resolve, reject) =>
          binding.poller.once('readable', (err) => (err ? reject(err) : resolve())),
        );
        continue;
      }
      if (bytesRead > 0) return { buffer, bytesRead };
      throw new Error(`${path} hung up: the other end of the line is gone`);
    }
  };
}

let serialport: Promise<typeof import('serialport')> | undefined;

/**
 * serialport, loaded when a port is first opened: an agent without MCUs never needs its compiled
 * binding, which a Pi installs as a package of its own (vigil-agent-serial, one per architecture).
 */
function loadSerialport(): Promise<typeof import('serialport')> {
  serialport ??= import('serialport').catch((e: unknown) => {
    serialport = undefined;
    throw new Error(
      `serial MCUs are configured but serial support is not installed (${(e as Error).message}): ` +
        'install the vigil-agent-serial package (or serialport beside the agent), or remove "mcus" from agent.json',
    );
  });
  return serialport;
}

/** Opens `path` (8N1, raw), rejecting with the system's reason when it cannot. */
export async function openSerialPort(path: string, baudRate: number): Promise<SerialPort> {
  const { SerialPort } = await loadSerialport();
  const port = new SerialPort({ path, baudRate, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  if (isUnixPortBinding(port.port)) hangUpOnEof(port.port, path);
  return port;
}
