import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAgent } from '../../device/agent.ts';
import { initAgent } from '../../device/init.ts';
import { measureSoftware } from '../../device/software.ts';
import { startSwtpm } from '../support/swtpm.ts';
import { testPki } from '../support/tls-pair.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { captureLogger } from './support.ts';

// `vigil-agent manifest --dir` prints what an operator registers as a release; `vigil-agent run`
// must measure that same tree, or the gateway refuses the device with sw-not-allowed.
test('run measures the configured softwareRoot, as the manifest command does', async () => {
  const swtpm = await startSwtpm();
  const dir = tempDir('agent-root');
  try {
    const ca = join(dir, 'gateway-ca.pem');
    writeFileSync(ca, testPki().ca);
    const root = new URL('../../shared/cbor', import.meta.url).pathname;
    // A gateway address nobody listens on: the agent measures before it connects.
    await initAgent({
      dir,
      gateway: 'mqtts://127.0.0.1:9',
      ca,
      tpm: swtpm.tcti,
      ek: 'ecc',
      softwareRoot: root,
    });
    const agent = await startAgent({
      dir,
      logger: captureLogger().logger,
      reconnect: { baseMs: 1000, capMs: 1000 },
    });
    try {
      assert.equal(agent.software.digest, measureSoftware({ root }).digest);
      assert.not.equal(agent.software.digest, measureSoftware().digest, 'not the agent’s own code');
    } finally {
      await agent.stop();
    }
  } finally {
    await swtpm.stop();
    removeDir(dir);
  }
});

test.run();
