import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimDevice } from '../equipment/sim/sim-device.ts';
import { startTestGateway } from '../support/gateway.ts';
import { eventually } from '../support/operator.ts';
import { simPolicy } from '../support/sim-devices.ts';

test('under an allowlist, revoking a device closes its live connection and refuses the next', async () => {
  const gw = await startTestGateway({
    policy: { ...simPolicy({ periodicMs: 60_000, deadlineMs: 2000 }), admission: { mode: 'allowlist' } },
  });
  const device = SimDevice.create({ seed: 'revoke/1' });
  try {
    gw.gateway.store.admit(device.id);
    await gw.gateway.refreshPolicy();
    const first = device.nextResult();
    await device.connect(gw.url, gw.ca);
    assert.is((await first).status, 'affirming');
    let closed = false;
    device.on('close', () => {
      closed = true;
    });

    const res = await fetch(`http://127.0.0.1:${gw.gateway.apiPort}/v1/admissions/${device.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${gw.operatorToken}` },
    });
    assert.is(res.status, 200);
    assert.is(((await res.json()) as { disconnected: number }).disconnected, 1);
    await eventually(
      () => closed && gw.gateway.connections.of(device.id).length === 0,
      'the connection is closed',
    );

    const refused = new Promise<{ code: string }>((resolve) => device.once('error', resolve));
    await device.connect(gw.url, gw.ca);
    assert.is((await refused).code, 'ek-not-admitted');
  } finally {
    await device.close();
    await gw.stop();
  }
});

test.run();
