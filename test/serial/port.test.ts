import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openSerialPort } from '../../firmware-shims/serial/port.ts';
import { startPtyPair } from '../support/pty.ts';

// serialport 13 alone spins on a tty that hung up before it started reading (read() returns 0
// and it reads again at once): the port is never reported closed and memory grows without end.
const it = suite('serial port open: a hang-up is a close');

it('a line that hangs up before the first read is reported closed, with why', async () => {
  const pty = await startPtyPair();
  try {
    const port = await openSerialPort(pty.mcuPath, 115_200);
    await pty.stop();
    const closed = new Promise<string>((resolve) => port.once('close', (e: unknown) => resolve(String(e))));
    port.on('error', () => {});
    port.on('data', () => {}); // the first read starts only now, after the hang-up
    assert.match(await closed, /hung up: the other end of the line is gone/);
    assert.not.ok(port.isOpen);
  } finally {
    await pty.close();
  }
});

it('a path with nothing behind it is refused with the system reason', async () => {
  try {
    await openSerialPort('/nonexistent/ttyMCU0', 115_200);
    assert.unreachable('opened');
  } catch (e) {
    assert.match((e as Error).message, /No such file or directory/);
  }
});

it.run();
