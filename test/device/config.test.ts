import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ConfigError,
  configJson,
  DEFAULT_AK_HANDLE,
  DEFAULT_SW_PCR,
  loadConfig,
  parseConfig,
  parseGatewayUrl,
} from '../../device/config.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

const test = suite('agent config');
const dir = tempDir('config');
test.after(() => removeDir(dir));

const minimal = { version: 1, gateway: 'mqtts://gw.example', ca: 'ca.pem', tpm: 'device:/dev/tpmrm0' };

test('defaults: port 8883, ECC EK, AK at 0x81000A01, swPcr 14, kernel log paths; relative paths from DIR', () => {
  const c = parseConfig(minimal, '/var/lib/vigil-agent');
  assert.equal(c.gateway, { host: 'gw.example', port: 8883, url: 'mqtts://gw.example:8883' });
  assert.is(c.ca, '/var/lib/vigil-agent/ca.pem');
  assert.is(c.ek, 'ecc');
  assert.is(c.akHandle, DEFAULT_AK_HANDLE);
  assert.is(c.swPcr, DEFAULT_SW_PCR);
  assert.is(c.logs.ima, '/sys/kernel/security/ima/ascii_runtime_measurements');
  assert.equal(parseConfig(configJson(c), '/elsewhere'), c, 'what is written reads back the same');
  assert.is(configJson(c).akHandle, '0x81000A01');
});

test('every invalid field is refused with its name and value', () => {
  const cases: [unknown, string][] = [
    [{ ...minimal, version: 2 }, '"version" must be 1, got 2'],
    [{ ...minimal, gateway: 'mqtt://gw' }, 'only mqtts:// is allowed'],
    [{ ...minimal, gateway: 'mqtts://user:pw@gw' }, 'credentials'],
    [{ ...minimal, gateway: 'gw:8883' }, 'gateway'],
    [{ ...minimal, ca: '' }, '"ca" must be a non-empty string'],
    [{ ...minimal, tpm: 5 }, '"tpm" must be a non-empty string, got 5'],
    [{ ...minimal, swPcr: 16 }, '"swPcr" must be a PCR from 8 to 15'],
    [{ ...minimal, swPcr: 7 }, 'got 7'],
    [{ ...minimal, akHandle: '0x80000001' }, '"akHandle" must be an owner persistent handle'],
    [{ ...minimal, ek: 'dsa' }, '"ek" must be "ecc"'],
    [{ ...minimal, clientCert: 'c.pem' }, 'clientKey'],
    [{ ...minimal, logs: [] }, '"logs"'],
    [[], 'expected a JSON object'],
  ];
  for (const [raw, message] of cases) {
    assert.throws(
      () => parseConfig(raw, dir, 'agent.json'),
      (e: Error) => e instanceof ConfigError && e.message.includes(message),
      message,
    );
  }
});

test('IPv6 gateway literals; missing and broken files say what to do', () => {
  assert.equal(parseGatewayUrl('mqtts://[::1]:1883'), { host: '::1', port: 1883, url: 'mqtts://[::1]:1883' });
  assert.throws(() => loadConfig(join(dir, 'none')), /run "vigil-agent init/);
  writeFileSync(join(dir, 'agent.json'), '{');
  assert.throws(() => loadConfig(dir), /not valid JSON/);
});

test.run();
