import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { replaySoftwareLog, SoftwareLog, SW_LOG_FILE } from '../../device/software-log.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { sha256 } from './hash.ts';
import { type ProvisionedTpm, provisionedTpm } from './support.ts';

// Reconciling the stored software log with the PCR, case by case (software-log.ts, OpenOutcome).

const PCR = 13;
const ctx: { tpm?: ProvisionedTpm; dirs: string[] } = { dirs: [] };
const test = suite('software log', ctx);

test.before(async () => {
  ctx.tpm = await provisionedTpm();
});
test.after(async () => {
  await ctx.tpm?.stop();
  for (const d of ctx.dirs) removeDir(d);
});

const access = () => ctx.tpm!.access;
const pcrValue = () => access().run(async (t) => (await t.pcrRead([PCR])).get(PCR)!);
const open = (dir: string) => access().run((t) => SoftwareLog.open(dir, PCR, t));
const m = (version: string) => ({ name: 'vigil-agent', version, digest: sha256(`manifest ${version}`) });
function fresh(): string {
  const d = tempDir('swlog');
  ctx.dirs.push(d);
  return d;
}

test('zero PCR: reset; records replay; reopening continues; same software is not extended twice', async () => {
  await ctx.tpm!.swtpm.restart();
  const dir = fresh();
  const { log, outcome } = await open(dir);
  assert.equal(outcome, { kind: 'reset', entries: 0 });
  assert.ok(await access().run((t) => log.record(t, m('1'))));
  assert.not.ok(await access().run((t) => log.record(t, m('1'))), 'unchanged software is not extended again');
  assert.ok(await access().run((t) => log.record(t, m('2'))));
  assert.equal(replaySoftwareLog(log.chunk(0).entries), await pcrValue());
  const again = await open(dir);
  assert.equal(again.outcome, { kind: 'continued', entries: 2 });
  assert.is(again.log.current('vigil-agent')?.version, '2');
});

test('log one entry ahead of the PCR (power cut between write and extend): completed', async () => {
  await ctx.tpm!.swtpm.restart();
  const dir = fresh();
  const { log } = await open(dir);
  await access().run((t) => log.record(t, m('1')));
  // Simulate the cut: the entry reached the file, the extend never happened.
  const file = join(dir, SW_LOG_FILE);
  const stored = JSON.parse(readFileSync(file, 'utf8'));
  stored.entries.push({
    digest: Buffer.from(m('2').digest).toString('hex'),
    name: 'vigil-agent',
    version: '2',
  });
  writeFileSync(file, JSON.stringify(stored));
  const reopened = await open(dir);
  assert.equal(reopened.outcome, { kind: 'completed', entries: 2 });
  assert.equal(replaySoftwareLog(reopened.log.chunk(0).entries), await pcrValue());
});

test('PCR extended by someone else: mismatch, old log archived, an honest new log', async () => {
  await ctx.tpm!.swtpm.restart();
  const dir = fresh();
  const { log } = await open(dir);
  await access().run((t) => log.record(t, m('1')));
  await access().run((t) => t.pcrExtend(PCR, sha256('intruder')));
  const { log: next, outcome } = await open(dir);
  assert.is(outcome.kind, 'mismatch');
  if (outcome.kind !== 'mismatch') return;
  assert.is(outcome.storedEntries, 1);
  assert.ok(outcome.archivedAs && existsSync(outcome.archivedAs), 'the old log is kept for investigation');
  assert.is(next.length, 0);
  await access().run((t) => next.record(t, m('1')));
  assert.is.not(
    Buffer.from(replaySoftwareLog(next.chunk(0).entries)).toString('hex'),
    Buffer.from(await pcrValue()).toString('hex'),
    'the new log does not pretend to replay',
  );
  assert.ok(readdirSync(dir).some((f) => f.startsWith(`${SW_LOG_FILE}.mismatch-`)));
});

test('a log kept for another PCR or a corrupt file counts as no log', async () => {
  await ctx.tpm!.swtpm.restart();
  const dir = fresh();
  writeFileSync(join(dir, SW_LOG_FILE), '{"version":1,"pcr":12,"entries":[]}');
  assert.equal((await open(dir)).outcome, { kind: 'reset', entries: 0 });
  writeFileSync(join(dir, SW_LOG_FILE), 'not json');
  assert.equal((await open(dir)).outcome, { kind: 'reset', entries: 0 });
});

test('chunks: bounded, with more; an offset past the end restarts at 0', async () => {
  await ctx.tpm!.swtpm.restart();
  const { log } = await open(fresh());
  for (const v of ['1', '2', '3']) await access().run((t) => log.record(t, m(v)));
  assert.equal([log.chunk(0, 2).from, log.chunk(0, 2).entries.length, log.chunk(0, 2).more], [0, 2, true]);
  assert.equal([log.chunk(2, 2).entries.length, log.chunk(2, 2).more], [1, false]);
  assert.equal([log.chunk(3).from, log.chunk(3).entries.length, log.chunk(3).more], [3, 0, false]);
  assert.equal([log.chunk(4).from, log.chunk(4).entries.length], [0, 3]);
});

test.run();
