import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DeviceConnection } from '../../gateway/connections/device-connection.ts';
import { roomFor } from '../../gateway/connections/room.ts';
import { FakeClock } from '../support/fake-clock.ts';

// Which connection gives way when a device id is at its connection limit (connections/room.ts):
// never an attested one; first one that never said hello, then one that has not attested, oldest
// first; and when all are attested, the newcomer is refused.

const clock = new FakeClock();
let n = 0;

function connection(phase: 'awaiting-hello' | 'attesting' | 'attested'): DeviceConnection {
  const c = new DeviceConnection(
    {
      clientId: `aaaaaaaaaaaaaaaaaaaaaaaa.c${n++}`,
      remoteAddress: '127.0.0.1',
      exporter: () => new Uint8Array(32),
      send: () => undefined,
      disconnect: () => undefined,
    },
    'aaaaaaaaaaaaaaaaaaaaaaaa',
    clock,
    () => undefined,
  );
  if (phase !== 'awaiting-hello') c.accept({} as never);
  if (phase === 'attested') c.attest();
  return c;
}

test('below the limit there is room', () => {
  assert.equal(roomFor([connection('attested')], 2), { kind: 'room' });
});

test('at the limit the oldest connection without hello goes first, then the oldest not attested', () => {
  const attested = connection('attested');
  const attesting1 = connection('attesting');
  const silent = connection('awaiting-hello');
  const attesting2 = connection('attesting');
  assert.equal(roomFor([attested, attesting1, silent, attesting2], 4), { kind: 'evict', conn: silent });
  assert.equal(roomFor([attested, attesting1, attesting2], 3), { kind: 'evict', conn: attesting1 });
});

test('never an attested connection: when every one attested, the newcomer is refused', () => {
  assert.equal(roomFor([connection('attested'), connection('attested')], 2), { kind: 'full' });
  assert.equal(roomFor([connection('attested')], 1), { kind: 'full' });
});

test.run();
