import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  defaultPolicy,
  defaultPolicyText,
  type Policy,
  PolicyError,
  parsePolicy,
  parsePolicyText,
  writeDefaultPolicy,
} from '../../gateway/policy/policy.ts';
import { PolicyFile, type PolicyFileOptions } from '../../gateway/policy/policy-file.ts';
import { createPki } from '../../gateway/setup/pki.ts';

const dirs: string[] = [];
const files: PolicyFile[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-policy-'));
  dirs.push(dir);
  return dir;
}

test.after.each(() => {
  for (const f of files.splice(0)) f.close();
});
test.after(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function errorOf(json: unknown): PolicyError {
  try {
    parsePolicy(json, 'policy.json');
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(json)}`);
}

const SHA = 'ab'.repeat(32);

test('an empty policy is the default policy, and the default is what the docs promise', () => {
  assert.equal(parsePolicy({}, 'policy.json'), defaultPolicy());
  assert.equal(defaultPolicy(), {
    admission: { mode: 'allowlist' },
    pcrs: [],
    referenceValues: { pcrs: {}, software: [] },
    rounds: { periodicMs: 300_000, jitter: 0.1, deadlineMs: 10_000, graceMs: 0, expiryMs: 750_000 },
    admitWarning: false,
    allowSim: false,
    maxPayload: 1024 * 1024,
    retention: { roundsDays: 7 },
    mcus: { firmware: {}, onFailure: 'submodule', slots: {}, models: {}, expect: [] },
    rollouts: { artifactBytesPerSecond: 4 * 1024 * 1024 },
    connections: { helloTimeoutMs: 15_000, keepaliveMaxS: 1200, perDevice: 4, unattestedPerAddress: 1000 },
    quotas: {
      subscriptions: 32,
      retainedMessages: 16,
      retainedBytes: 16 * 1024,
      queuedMessages: 64,
      queuedBytes: 32 * 1024,
    },
  });
});

test('the default policy file parses back to the default policy and is not overwritten', () => {
  const path = join(tempDir(), 'policy.json');
  writeDefaultPolicy(path);
  assert.equal(parsePolicyText(readFileSync(path, 'utf8'), path), defaultPolicy());
  writeFileSync(path, '{}');
  assert.throws(() => writeDefaultPolicy(path), /EEXIST/);
  writeDefaultPolicy(path, { overwrite: true });
  assert.is(readFileSync(path, 'utf8'), defaultPolicyText());
});

test('a full policy parses; hex is normalised; expiry follows the interval unless given', () => {
  const p = parsePolicy(
    {
      $comment: 'comments are ignored at any level',
      admission: { mode: 'ek-ca', ekCa: 'ek-roots.pem' },
      pcrs: [0, 4, 7],
      referenceValues: {
        pcrs: { '4': [SHA.toUpperCase()], '7': [SHA, 'cd'.repeat(32)] },
        software: [{ name: 'vigil-agent', version: '0.1.0', digest: SHA }],
      },
      rounds: { periodicMs: 60_000, jitter: 0, deadlineMs: 5000, graceMs: 1000 },
      admitWarning: true,
      allowSim: true,
      maxPayload: 4096,
      retention: { roundsDays: 30 },
      rollouts: { artifactBytesPerSecond: 1_000_000 },
      connections: { helloTimeoutMs: 2000, keepaliveMaxS: 60, perDevice: 2, unattestedPerAddress: 10 },
      quotas: {
        subscriptions: 4,
        retainedMessages: 0,
        retainedBytes: 0,
        queuedMessages: 8,
        queuedBytes: 4096,
      },
    },
    'policy.json',
  );
  assert.equal(p, {
    admission: { mode: 'ek-ca', ekCa: 'ek-roots.pem' },
    pcrs: [0, 4, 7],
    referenceValues: {
      pcrs: { 4: [SHA], 7: [SHA, 'cd'.repeat(32)] },
      software: [{ name: 'vigil-agent', version: '0.1.0', digest: SHA }],
    },
    rounds: { periodicMs: 60_000, jitter: 0, deadlineMs: 5000, graceMs: 1000, expiryMs: 150_000 },
    admitWarning: true,
    allowSim: true,
    maxPayload: 4096,
    retention: { roundsDays: 30 },
    mcus: { firmware: {}, onFailure: 'submodule', slots: {}, models: {}, expect: [] },
    rollouts: { artifactBytesPerSecond: 1_000_000 },
    connections: { helloTimeoutMs: 2000, keepaliveMaxS: 60, perDevice: 2, unattestedPerAddress: 10 },
    quotas: { subscriptions: 4, retainedMessages: 0, retainedBytes: 0, queuedMessages: 8, queuedBytes: 4096 },
  } satisfies Policy);
});

// Each case: a policy with one thing wrong, the field the error must name, and a piece of its message.
const WRONG: [unknown, string, RegExp][] = [
  [[], '', /expected an object with keys admission, pcrs/],
  [null, '', /expected an object/],
  [{ admision: {} }, 'admision', /unknown key \(allowed here: admission, pcrs,/],
  [{ retention: { roundsDays: 0 } }, 'retention.roundsDays', /whole number of days from 1 to 3650, got 0/],
  [{ retention: { rounds: 7 } }, 'retention.rounds', /unknown key \(allowed here: roundsDays\)/],
  [
    { connections: { helloTimeoutMs: 100 } },
    'connections.helloTimeoutMs',
    /whole number of ms from 500 to 300000, got 100/,
  ],
  [{ connections: { keepaliveMaxS: 0 } }, 'connections.keepaliveMaxS', /from 10 to 65535, got 0/],
  [{ connections: { perDevice: 0 } }, 'connections.perDevice', /from 1 to 100, got 0/],
  [
    { connections: { perAddress: 5 } },
    'connections.perAddress',
    /unknown key \(allowed here: helloTimeoutMs,/,
  ],
  [{ quotas: { subscriptions: -1 } }, 'quotas.subscriptions', /from 0 to 10000, got -1/],
  [{ quotas: { retainedBytes: -1 } }, 'quotas.retainedBytes', /whole number of bytes from 0/],
  [{ quotas: { queuedMessages: '64' } }, 'quotas.queuedMessages', /got "64"/],
  [
    { rollouts: { artifactBytesPerSecond: 1000 } },
    'rollouts.artifactBytesPerSecond',
    /bytes\/s from 65536 to 10737418240, got 1000/,
  ],
  [{ admission: 'open' }, 'admission', /expected an object with keys mode, ekCa, got "open"/],
  [
    { admission: { mode: 'tofu' } },
    'admission.mode',
    /expected one of "allowlist", "ek-ca", "open", got "tofu"/,
  ],
  [{ admission: { mode: 'ek-ca' } }, 'admission.ekCa', /required when admission.mode is "ek-ca"/],
  [{ admission: { mode: 'ek-ca', ekCa: '' } }, 'admission.ekCa', /expected a non-empty string, got ""/],
  [{ admission: { mode: 'open', extra: 1 } }, 'admission.extra', /unknown key/],
  [{ pcrs: 7 }, 'pcrs', /expected PCR indices from 0 to 23, ascending, got 7/],
  [{ pcrs: [0, 24] }, 'pcrs[1]', /expected a whole number from 0 to 23, got 24/],
  [{ pcrs: [7, 0] }, 'pcrs[1]', /ascending without repeats, got 0 after 7/],
  [{ pcrs: [7, 7] }, 'pcrs[1]', /got 7 after 7/],
  [{ pcrs: ['7'] }, 'pcrs[0]', /got "7"/],
  [{ referenceValues: [] }, 'referenceValues', /expected an object with keys pcrs, software/],
  [{ referenceValues: { pcr: {} } }, 'referenceValues.pcr', /unknown key/],
  [{ referenceValues: { pcrs: [] } }, 'referenceValues.pcrs', /mapping PCR indices to lists/],
  [
    { pcrs: [4], referenceValues: { pcrs: { x: [SHA] } } },
    'referenceValues.pcrs.x',
    /PCR index from 0 to 23/,
  ],
  [{ pcrs: [4], referenceValues: { pcrs: { '04': [SHA] } } }, 'referenceValues.pcrs.04', /PCR index/],
  [{ pcrs: [4, 5], referenceValues: { pcrs: { '4.5': [SHA] } } }, 'referenceValues.pcrs.4.5', /PCR index/],
  [
    { pcrs: [4], referenceValues: { pcrs: { '7': [SHA] } } },
    'referenceValues.pcrs.7',
    /PCR 7 is not in pcrs/,
  ],
  [{ pcrs: [4], referenceValues: { pcrs: { '4': SHA } } }, 'referenceValues.pcrs.4', /expected a list/],
  [
    { pcrs: [4], referenceValues: { pcrs: { '4': [] } } },
    'referenceValues.pcrs.4',
    /at least one allowed value/,
  ],
  [
    { pcrs: [4], referenceValues: { pcrs: { '4': ['abc'] } } },
    'referenceValues.pcrs.4[0]',
    /64 hex digits, got "abc"/,
  ],
  [
    { referenceValues: { software: {} } },
    'referenceValues.software',
    /expected a list of \{name, version, digest\}/,
  ],
  [
    { referenceValues: { software: [{ version: '1', digest: SHA }] } },
    'referenceValues.software[0].name',
    /non-empty string, got nothing/,
  ],
  [
    { referenceValues: { software: [{ name: 'a', version: 1, digest: SHA }] } },
    'referenceValues.software[0].version',
    /got 1/,
  ],
  [
    { referenceValues: { software: [{ name: 'a', version: '1', digest: 'x' }] } },
    'referenceValues.software[0].digest',
    /SHA-256/,
  ],
  [
    { referenceValues: { software: [{ name: 'a', version: '1', digest: SHA, url: '' }] } },
    'referenceValues.software[0].url',
    /unknown key/,
  ],
  [
    {
      referenceValues: {
        software: [
          { name: 'a', version: '1', digest: SHA },
          { name: 'a', version: '1', digest: SHA },
        ],
      },
    },
    'referenceValues.software[1]',
    /a 1 is listed twice/,
  ],
  [{ rounds: 300 }, 'rounds', /expected an object with keys periodicMs/],
  [
    { rounds: { periodicMs: '5m' } },
    'rounds.periodicMs',
    /expected a whole number of ms from 1000 to 86400000, got "5m"/,
  ],
  [{ rounds: { periodicMs: 999 } }, 'rounds.periodicMs', /from 1000 to 86400000, got 999/],
  [{ rounds: { periodicMs: 1500.5 } }, 'rounds.periodicMs', /whole number/],
  [{ rounds: { jitter: 0.6 } }, 'rounds.jitter', /expected a number from 0 to 0.5, got 0.6/],
  [{ rounds: { jitter: -0.1 } }, 'rounds.jitter', /from 0 to 0.5/],
  [{ rounds: { deadlineMs: 50 } }, 'rounds.deadlineMs', /from 100 to 300000, got 50/],
  [
    { rounds: { periodicMs: 5000, deadlineMs: 5000 } },
    'rounds.deadlineMs',
    /less than rounds.periodicMs \(5000\)/,
  ],
  [{ rounds: { periodicMs: 2000 } }, 'rounds.deadlineMs', /less than rounds.periodicMs \(2000\).*got 10000/],
  [{ rounds: { graceMs: -1 } }, 'rounds.graceMs', /from 0 to 86400000, got -1/],
  [{ rounds: { expiryMs: 'never' } }, 'rounds.expiryMs', /whole number of ms/],
  [{ rounds: { expiryMs: 300_000 } }, 'rounds.expiryMs', /more than .* = 340000 ms.*got 300000/],
  [{ rounds: { periodicMs: 3_600_000, expiryMs: 750_000 } }, 'rounds.expiryMs', /= 3970000 ms/],
  [{ rounds: { periodMs: 1000 } }, 'rounds.periodMs', /unknown key \(allowed here: periodicMs, jitter,/],
  [{ admitWarning: 'yes' }, 'admitWarning', /expected true or false, got "yes"/],
  [{ allowSim: 1 }, 'allowSim', /expected true or false, got 1/],
  [{ maxPayload: 1024 }, 'maxPayload', /expected a whole number of bytes from 4096 to 16777216, got 1024/],
  [{ maxPayload: 17 * 1024 * 1024 }, 'maxPayload', /to 16777216/],
];

test('every field wrong in turn: a PolicyError names the field, the value and what is allowed', () => {
  for (const [json, field, message] of WRONG) {
    const err = errorOf(json);
    const label = JSON.stringify(json);
    assert.is(err.field, field, label);
    assert.is(err.source, 'policy.json', label);
    assert.ok(
      err.message.startsWith(field === '' ? 'policy.json: ' : `policy.json: ${field}: `),
      err.message,
    );
    assert.match(err.message, message, `${label} → ${err.message}`);
  }
});

test('a file that is not JSON is a PolicyError for the whole document', () => {
  assert.throws(
    () => parsePolicyText('{"pcrs": [0,', 'p.json'),
    (e: unknown) => {
      return e instanceof PolicyError && e.field === '' && /^p\.json: not valid JSON: /.test(e.message);
    },
  );
});

interface Watched {
  readonly file: PolicyFile;
  readonly path: string;
  readonly changes: Policy[];
  readonly invalid: PolicyError[];
  /** Resolves at the next onChange or onInvalid. */
  next(): Promise<void>;
}

function watchedPolicy(initial: unknown, options: PolicyFileOptions = {}): Watched {
  const path = join(tempDir(), 'policy.json');
  writeFileSync(path, JSON.stringify(initial));
  const changes: Policy[] = [];
  const invalid: PolicyError[] = [];
  let wake: (() => void) | undefined;
  const file = new PolicyFile(path, {
    debounceMs: 20,
    ...options,
    onChange: (p) => {
      changes.push(p);
      wake?.();
    },
    onInvalid: (e) => {
      invalid.push(e);
      wake?.();
    },
  });
  files.push(file);
  return {
    file,
    path,
    changes,
    invalid,
    next: () =>
      new Promise<void>((resolve, reject) => {
        // A guard against hanging, not a timing assertion.
        const t = setTimeout(() => reject(new Error('no reload within 10 s')), 10_000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      }),
  };
}

/** Replace the file the way editors and config tools do: write aside, rename over. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

test('a changed file is reloaded without a restart', async () => {
  const w = watchedPolicy({ allowSim: false });
  assert.is(w.file.current().allowSim, false);
  const reloaded = w.next();
  replace(w.path, JSON.stringify({ allowSim: true, rounds: { periodicMs: 60_000 } }));
  await reloaded;
  assert.is(w.file.current().allowSim, true);
  assert.is(w.file.current().rounds.expiryMs, 150_000);
  assert.is(w.changes.length, 1);
  // and again, written in place this time
  const again = w.next();
  writeFileSync(w.path, JSON.stringify({ allowSim: true, admitWarning: true }));
  await again;
  assert.is(w.file.current().admitWarning, true);
});

test('an invalid new file keeps the previous policy and is reported', async () => {
  const w = watchedPolicy({ pcrs: [0] });
  const reported = w.next();
  replace(w.path, JSON.stringify({ pcrs: [0], rounds: { jitter: 2 } }));
  await reported;
  assert.equal(w.file.current().pcrs, [0]);
  assert.is(w.changes.length, 0);
  assert.is(w.invalid[0]?.field, 'rounds.jitter');
  assert.match(
    String(w.invalid[0]?.message),
    `${w.path}: rounds.jitter: expected a number from 0 to 0.5, got 2`,
  );
  // A half-written file is no different.
  replace(w.path, '{"pcrs": [0, 1');
  const outcome = w.file.reload();
  assert.is(outcome.ok, false);
  assert.equal(w.file.current().pcrs, [0]);
  // A deleted file neither.
  rmSync(w.path);
  const gone = w.file.reload();
  assert.ok(!gone.ok && /cannot read: ENOENT/.test(gone.error.message));
  assert.equal(w.file.current().pcrs, [0]);
});

test('reload(): explicit, idempotent on unchanged text', () => {
  const w = watchedPolicy({}, { watch: false });
  assert.equal(w.file.reload(), { ok: true, changed: false });
  writeFileSync(w.path, JSON.stringify({ maxPayload: 8192 }));
  assert.equal(w.file.reload(), { ok: true, changed: true });
  assert.is(w.file.current().maxPayload, 8192);
  assert.is(w.changes.length, 1);
});

test('a policy that does not load at start is an error, not a default', () => {
  const dir = tempDir();
  assert.throws(
    () => new PolicyFile(join(dir, 'missing.json'), { watch: false }),
    /missing\.json: cannot read: ENOENT/,
  );
  writeFileSync(join(dir, 'bad.json'), '{"allowSim": "no"}');
  assert.throws(
    () => new PolicyFile(join(dir, 'bad.json'), { watch: false }),
    /bad\.json: allowSim: expected true or false/,
  );
});

test('ek-ca: the CA bundle is resolved beside the policy file and loaded with it, or the policy is refused', () => {
  const dir = tempDir();
  const pki = createPki(join(dir, 'pki'), ['localhost']);
  const path = join(dir, 'policy.json');
  writeFileSync(path, JSON.stringify({ admission: { mode: 'ek-ca', ekCa: 'pki/ca.pem' } }));
  const invalid: PolicyError[] = [];
  const file = new PolicyFile(path, { watch: false, onInvalid: (e) => invalid.push(e) });
  files.push(file);
  assert.is(file.current().admission.ekCa, pki.caCert);
  assert.is(file.ekCas().length, 1);
  assert.ok(file.ekCas()[0]?.ca);

  writeFileSync(path, JSON.stringify({ admission: { mode: 'ek-ca', ekCa: 'pki/server.pem' } }));
  assert.is(file.reload().ok, false);
  assert.is(invalid[0]?.field, 'admission.ekCa');
  assert.match(String(invalid[0]?.message), /certificate 1 in .*server\.pem.* is not a CA certificate/);

  writeFileSync(path, JSON.stringify({ admission: { mode: 'ek-ca', ekCa: 'nope.pem' } }));
  assert.is(file.reload().ok, false);
  assert.match(String(invalid[1]?.message), /admission\.ekCa: cannot read .*nope\.pem.*ENOENT/);
  assert.is(file.current().admission.ekCa, pki.caCert, 'still the first policy');
});

test.run();
