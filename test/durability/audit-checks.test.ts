import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HELPERS } from '../../gateway/audit/checks.ts';
import { bindingDigest } from '../../shared/protocol/binding.ts';
import { tempDir } from '../support/tmp.ts';

// The audit export's shell helpers against Vigil's own code and node:crypto, on the cases that
// break hand-written converters: ES256 signatures whose r or s has its top bit set (DER needs a
// leading zero) or starts with zero bytes (DER drops them).

const helpers = (dir: string, script: string) =>
  execFileSync('bash', ['-c', `set -eu\n${HELPERS}\n${script}`], { cwd: dir, encoding: 'buffer' });

test('p1363_der turns r || s into the DER that verifies, whatever the leading bytes', () => {
  const dir = tempDir('audit-der');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from('vigil audit');
  const kinds = { highR: 0, highS: 0, zeroR: 0, zeroS: 0 };
  const sigs: Buffer[] = [];
  for (let i = 0; i < 20_000 && Object.values(kinds).some((n) => n === 0); i++) {
    const sig = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const kind =
      sig[0]! >= 0x80
        ? 'highR'
        : sig[32]! >= 0x80
          ? 'highS'
          : sig[0] === 0
            ? 'zeroR'
            : sig[32] === 0
              ? 'zeroS'
              : undefined;
    if (kind && kinds[kind] < 3) {
      kinds[kind]++;
      sigs.push(sig);
    }
  }
  assert.ok(
    Object.values(kinds).every((n) => n > 0),
    `every kind met: ${JSON.stringify(kinds)}`,
  );
  for (const [i, s] of sigs.entries()) writeFileSync(join(dir, `${i}.sig`), s);
  helpers(dir, `for i in $(seq 0 ${sigs.length - 1}); do p1363_der $i.sig > $i.der; done`);
  sigs.forEach((s, i) => {
    const der = helpers(dir, `cat ${i}.der`);
    assert.ok(
      verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, der),
      `signature ${s.toString('hex')}`,
    );
  });
});

test('extradata is PROTOCOL.md §4 (its vector), cbor_bstr and b64url_decode are exact', () => {
  const dir = tempDir('audit-helpers');
  const exporter = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const body = Buffer.from('a1646e616d6563616263', 'hex');
  writeFileSync(join(dir, 'exporter.bin'), exporter);
  writeFileSync(join(dir, 'body.cbor'), body);
  const extra = helpers(dir, 'extradata').toString().trim();
  assert.is(extra, '2f785a62d4693acc2aef1ce9dc504c1e5cfebc31a45f5f06ed3d7fc18a1547a7');
  assert.is(extra, Buffer.from(bindingDigest(exporter, body)).toString('hex'));
  for (const n of [0, 23, 24, 255, 256, 300]) {
    writeFileSync(join(dir, 'f'), Buffer.alloc(n, 7));
    const head = n < 24 ? [0x40 + n] : n < 256 ? [0x58, n] : [0x59, n >> 8, n & 255];
    assert.equal(
      helpers(dir, 'cbor_bstr f'),
      Buffer.concat([Buffer.from(head), Buffer.alloc(n, 7)]),
      `${n} bytes`,
    );
  }
  for (const n of [1, 2, 3, 31, 32, 33]) {
    const bytes = Buffer.alloc(n, 0xfb);
    const decoded = helpers(dir, `printf %s '${bytes.toString('base64url')}' | b64url_decode`);
    assert.equal(decoded, bytes, `${n} bytes`);
  }
});

test.run();
