import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BOOT_CHUNK_BYTES, BootLog } from '../../firmware-shims/logs/boot-log.ts';
import { ImaLog } from '../../firmware-shims/logs/ima.ts';
import { removeDir, tempDir } from '../support/tmp.ts';

const test = suite('IMA and boot log sources');
const dir = tempDir('logs');
test.after(() => removeDir(dir));

const lines = Array.from(
  { length: 10 },
  (_, i) => `10 ${String(i).padStart(40, '0')} ima-ng sha256:${i} /bin/f${i}`,
);

test('IMA: lines from the offset asked, bounded chunks with more, incremental reads, past the end from 0', async () => {
  const path = join(dir, 'ima');
  writeFileSync(path, `${lines.slice(0, 6).join('\n')}\n`);
  const ima = new ImaLog(path, { maxLines: 4 });
  const a = await ima.read(0);
  assert.equal(a, { kind: 'present', chunk: { from: 0, entries: lines.slice(0, 4), more: true } });
  const b = await ima.read(4);
  assert.equal(b, { kind: 'present', chunk: { from: 4, entries: lines.slice(4, 6), more: false } });
  // The kernel appends; the next round asks from where the gateway is.
  writeFileSync(path, `${lines.join('\n')}\n`);
  const c = await ima.read(6);
  assert.equal(c, { kind: 'present', chunk: { from: 6, entries: lines.slice(6, 10), more: false } });
  // Going back works too (the cursor is only an optimisation).
  assert.equal((await ima.read(1)).kind === 'present' && (await ima.read(1)), {
    kind: 'present',
    chunk: { from: 1, entries: lines.slice(1, 5), more: true },
  });
  const caughtUp = await ima.read(10);
  assert.equal(caughtUp, { kind: 'present', chunk: { from: 10, entries: [], more: false } });
  // A reboot: the list is shorter than the gateway's offset.
  writeFileSync(path, `${lines[0]}\n`);
  assert.equal(await ima.read(7), { kind: 'present', chunk: { from: 0, entries: [lines[0]!], more: false } });
});

test('IMA: byte bound; a last line without newline counts', async () => {
  const path = join(dir, 'ima-bytes');
  writeFileSync(path, lines.slice(0, 3).join('\n'));
  const r = await new ImaLog(path, { maxBytes: lines[0]!.length * 2 + 2 }).read(0);
  assert.equal(r, { kind: 'present', chunk: { from: 0, entries: lines.slice(0, 2), more: true } });
  const all = await new ImaLog(path).read(0);
  assert.equal(all.kind === 'present' && all.chunk.entries, lines.slice(0, 3));
});

test('absent or unreadable logs are reported absent, never faked', async () => {
  const missing = await new ImaLog(join(dir, 'nope')).read(0);
  assert.is(missing.kind, 'absent');
  assert.match(missing.kind === 'absent' ? missing.reason : '', 'not present');
  const locked = join(dir, 'locked');
  writeFileSync(locked, 'x\n');
  chmodSync(locked, 0);
  const r = await new BootLog(locked).read(0);
  if (process.getuid?.() !== 0) {
    assert.is(r.kind, 'absent');
    assert.match(r.kind === 'absent' ? r.reason : '', 'not readable');
  }
});

test('boot log: fixed-size chunks by index, bounded, past the end from 0', async () => {
  const path = join(dir, 'boot');
  const bytes = new Uint8Array(BOOT_CHUNK_BYTES * 2 + 100).map((_, i) => i & 0xff);
  writeFileSync(path, bytes);
  const boot = new BootLog(path, 2);
  const a = await boot.read(0);
  assert.ok(a.kind === 'present');
  if (a.kind !== 'present') return;
  assert.is(a.chunk.entries.length, 2);
  assert.is(a.chunk.more, true);
  assert.is(Buffer.compare(Buffer.concat(a.chunk.entries), bytes.subarray(0, BOOT_CHUNK_BYTES * 2)), 0);
  const b = await boot.read(2);
  assert.equal(b.kind === 'present' && [b.chunk.from, b.chunk.entries[0]!.length, b.chunk.more], [
    2,
    100,
    false,
  ]);
  const caughtUp = await boot.read(3);
  assert.equal(caughtUp.kind === 'present' && [caughtUp.chunk.from, caughtUp.chunk.entries.length], [3, 0]);
  const past = await boot.read(9);
  assert.equal(past.kind === 'present' && [past.chunk.from, past.chunk.entries.length], [0, 2]);
});

test.run();
