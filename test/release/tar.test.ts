import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { TarError } from '../../shared/tar/header.ts';
import { readUstar, type TarEvent, UstarReader } from '../../shared/tar/reader.ts';
import { writeUstar } from '../../shared/tar/writer.ts';
import { removeDir, tempDir } from '../support/tmp.ts';
import { BLOCK, forge, forgeHeader, rechecksum, TYPEFLAG, text } from './forge.ts';

// The release archive format (shared/tar): the writer is deterministic and GNU tar reads it; the
// reader takes GNU tar's ustar output and refuses, with the entry named, everything a release
// archive must not hold.

const it = suite('ustar');
const dirs: string[] = [];
it.after(() => {
  for (const d of dirs) removeDir(d);
});

const members = [
  { path: 'bin' },
  { path: 'bin/app', data: text('#!/bin/sh\necho app\n'), executable: true },
  { path: 'lib/deep/x.js', data: text('export {}\n') },
  { path: 'README', data: new Uint8Array(700).fill(0x41) },
];

function refused(bytes: Uint8Array | [Uint8Array, number], ...fragments: string[]): void {
  try {
    if (bytes instanceof Uint8Array) readUstar(bytes);
    else readUstar(bytes[0], { limit: bytes[1] });
  } catch (e) {
    assert.instance(e, TarError, String(e));
    for (const f of fragments)
      assert.ok((e as Error).message.includes(f), `"${(e as Error).message}" should mention "${f}"`);
    return;
  }
  assert.unreachable(`accepted an archive that should be refused (${fragments.join(', ')})`);
}

it('deterministic: the same tree in any order gives the same bytes; fixed owner, time and modes', () => {
  const a = writeUstar(members);
  const b = writeUstar([...members].reverse());
  assert.equal(a, b);
  const read = readUstar(a);
  assert.equal(
    read.map((m) => [m.path, m.type, m.mode.toString(8)]),
    [
      ['README', 'file', '644'],
      ['bin', 'dir', '755'],
      ['bin/app', 'file', '755'],
      ['lib/deep/x.js', 'file', '644'],
    ],
  );
  assert.equal(read[2]!.data, members[1]!.data);
});

it('GNU tar lists and extracts ours; ours reads GNU tar ustar and refuses its gnu and pax formats', () => {
  const dir = tempDir('tar');
  dirs.push(dir);
  const ours = join(dir, 'ours.tar');
  writeFileSync(ours, writeUstar(members));
  const listing = execFileSync('tar', ['-tvf', ours], { encoding: 'utf8' });
  assert.match(listing, /-rwxr-xr-x 0\/0 +19 1970-01-01 00:00 bin\/app/);
  mkdirSync(join(dir, 'out'));
  execFileSync('tar', ['-xf', ours, '-C', join(dir, 'out')]);
  assert.is(readFileSync(join(dir, 'out/lib/deep/x.js'), 'utf8'), 'export {}\n');

  mkdirSync(join(dir, 'tree/sub'), { recursive: true });
  writeFileSync(join(dir, 'tree/sub/f'), 'gnu\n');
  const make = (format: string) => {
    const file = join(dir, `${format}.tar`);
    execFileSync('tar', [`--format=${format}`, '-cf', file, '-C', join(dir, 'tree'), 'sub']);
    return new Uint8Array(readFileSync(file));
  };
  assert.equal(
    readUstar(make('ustar')).map((m) => m.path),
    ['sub', 'sub/f'],
  );
  refused(make('gnu'), 'GNU tar format');
  refused(make('pax'), 'pax');
});

const file = (name: string, extra: object = {}) => ({ header: { name, ...extra }, data: text('x') });

it('links, devices, fifos and extension headers are refused, each named', () => {
  const cases: [number, string][] = [
    [TYPEFLAG.symlink, 'a symbolic link to "/etc/passwd"'],
    [TYPEFLAG.hardLink, 'a hard link to "/etc/passwd"'],
    [TYPEFLAG.charDevice, 'a character device'],
    [TYPEFLAG.blockDevice, 'a block device'],
    [TYPEFLAG.fifo, 'a fifo'],
    [TYPEFLAG.contiguous, 'a contiguous file'],
    [TYPEFLAG.paxLocal, 'a pax extended header'],
    [TYPEFLAG.paxGlobal, 'a pax global header'],
    [TYPEFLAG.gnuLongName, 'a GNU long-name header'],
    [TYPEFLAG.gnuLongLink, 'a GNU long-link header'],
    [0x41, 'unknown type flag 0x41'],
  ];
  for (const [typeflag, what] of cases)
    refused(
      forge([{ header: { name: 'x', typeflag, linkname: typeflag <= 0x32 ? '/etc/passwd' : '' } }]),
      '"x"',
      what,
    );
});

it('unsafe paths are refused: absolute, dot-dot, dot, empty segment, backslash, control, not UTF-8', () => {
  for (const name of ['/etc/passwd', '../escape', 'a/../../b', './a', 'a//b', 'a\\b', 'a\u0001b', 'a\u007fb'])
    refused(forge([file(name)]), 'unsafe path');
  refused(forge([{ header: { name: 'ok', prefix: '..' }, data: text('x') }]), 'unsafe path', '../ok');
  const latin1 = forgeHeader(file('abc'));
  latin1[1] = 0xe9; // "aéc" in Latin-1: not UTF-8
  refused(
    new Uint8Array(Buffer.concat([rechecksum(latin1), text('x'), new Uint8Array(BLOCK * 3 - 1)])),
    'not UTF-8',
  );
});

it('twice, inside a file, setuid, a sized directory, base-256 size: refused', () => {
  refused(forge([file('a'), file('a')]), 'a is in the archive twice');
  refused(
    forge([
      { header: { name: 'd/', typeflag: TYPEFLAG.dir } },
      { header: { name: 'd/', typeflag: TYPEFLAG.dir } },
    ]),
    'twice',
  );
  refused(forge([file('a'), file('a/b')]), 'a/b is inside a, which is a file');
  refused(forge([file('a/b'), file('a')]), 'a is a file, but earlier entries are inside it');
  refused(forge([file('s', { mode: 0o4755 })]), 'setuid');
  refused(forge([{ header: { name: 'd/', typeflag: TYPEFLAG.dir, size: 1 } }]), 'directory d has a size');
  const big = forgeHeader(file('big'));
  big[124] = 0x80;
  refused(big, 'base-256');
});

it('a wrong checksum, no magic, truncation, garbage after the end, a zero block inside: refused', () => {
  refused(forge([{ ...file('a'), chksum: 1234 }]), 'checksum 1234');
  refused(forge([{ header: { name: 'a', magic: 'xxxxx\0' }, data: text('x') }]), 'no ustar magic');
  const good = writeUstar(members);
  refused(good.subarray(0, 700), 'truncated', 'inside README');
  refused(good.subarray(0, good.length - BLOCK), 'truncated', 'before its end-of-archive marker');
  const tail = new Uint8Array(good.length + 10);
  tail.set(good);
  tail[good.length + 5] = 1;
  refused(tail, 'data after the end-of-archive marker');
  // One zero block is not the end of an archive: two are.
  refused(forge([file('a')], new Uint8Array(BLOCK)), 'truncated', 'before its end-of-archive marker');
  const inside = Buffer.concat([
    forge([file('a')], new Uint8Array(BLOCK)),
    forgeHeader(file('b')),
    new Uint8Array(3 * BLOCK),
  ]);
  refused(new Uint8Array(inside), 'a zero block inside the archive');
});

it('the declared size bounds the archive: an entry that cannot fit is refused before its data', () => {
  const bytes = writeUstar(members);
  assert.ok(readUstar(bytes, { limit: bytes.length }));
  refused(
    [forge([{ header: { name: 'huge', size: 2 ** 33 - 1 } }], new Uint8Array(0)), 1 << 20],
    'huge',
    'does not fit',
  );
  assert.throws(
    () => readUstar(bytes, { limit: bytes.length - 1 }),
    (e: Error) => e instanceof TarError,
  );
  const r = new UstarReader({ limit: 3 * BLOCK });
  assert.throws(
    () => r.push(forgeHeader({ header: { name: 'x', size: 2 * BLOCK } })),
    /does not fit in the archive's declared 1536 bytes/,
  );
});

it('streaming: any split of the input gives the same events as the whole', () => {
  const bytes = writeUstar(members);
  const flat = (chunks: Uint8Array[]) => {
    const r = new UstarReader();
    const out: (string | number)[] = [];
    for (const c of chunks)
      for (const e of r.push(c) as TarEvent[])
        out.push(
          e.kind === 'data'
            ? `data:${Buffer.from(e.bytes).toString('hex')}`
            : e.kind === 'end'
              ? 'end'
              : `${e.kind}:${e.entry.path}`,
        );
    r.end();
    // Data may arrive in more pieces when split; compare its concatenation per entry.
    return out.join('|').replace(/\|data:/g, '');
  };
  const whole = flat([bytes]);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks = [0, ...points].map((p, i) => bytes.subarray(p, points[i] ?? bytes.length));
      assert.is(flat(chunks), whole);
    }),
    { seed: 0x7a6, numRuns: 300 },
  );
});

it('fuzz: mutated archives give TarError or a clean read, nothing else', () => {
  const base = writeUstar(members);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.nat(base.length),
      (edits, cut) => {
        const b = base.slice(0, Math.max(cut, 1));
        for (const [at, v] of edits) if (at < b.length) b[at] = v;
        try {
          readUstar(b);
        } catch (e) {
          if (!(e instanceof TarError)) throw e;
        }
      },
    ),
    { seed: 0x7a7, numRuns: 3000 },
  );
});

it.run();
