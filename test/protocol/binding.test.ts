import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bindingDigest, channelExporter, EXPORTER_LABEL } from '../../shared/protocol/index.ts';
import { withTlsPair } from '../support/tls-pair.ts';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const B = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const BODY = hex('a1646e616d6563616263');

test('PROTOCOL.md §4 vector', () => {
  assert.is(
    toHex(bindingDigest(B, BODY)),
    '2f785a62d4693acc2aef1ce9dc504c1e5cfebc31a45f5f06ed3d7fc18a1547a7',
  );
});

test('the recipe agrees with openssl dgst computing it from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vigil-binding-'));
  try {
    writeFileSync(join(dir, 'body'), BODY);
    const bodyHash = execFileSync('openssl', ['dgst', '-sha256', '-binary', join(dir, 'body')]);
    writeFileSync(join(dir, 'input'), Buffer.concat([Buffer.from('vigil/1'), Buffer.from([0]), B, bodyHash]));
    const expected = execFileSync('openssl', ['dgst', '-sha256', '-binary', join(dir, 'input')]);
    assert.is(toHex(bindingDigest(B, BODY)), expected.toString('hex'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every input changes the digest', () => {
  const base = toHex(bindingDigest(B, BODY));
  const b2 = B.slice();
  b2[31] = 33;
  assert.is.not(toHex(bindingDigest(b2, BODY)), base);
  assert.is.not(toHex(bindingDigest(B, hex('a1646e616d6563616264'))), base);
  assert.throws(() => bindingDigest(B.subarray(1), BODY), /32 bytes/);
});

test('over real TLS 1.3 both ends export the same B; another nonce or connection gives another', async () => {
  const nonce = createHash('sha256').update('n1').digest();
  const other = createHash('sha256').update('n2').digest();
  const [first, second] = await Promise.all([withTlsPair(), withTlsPair()]);
  try {
    const serverB = channelExporter(first.server, nonce);
    assert.equal(channelExporter(first.client, nonce), serverB);
    assert.is(first.client.getProtocol(), 'TLSv1.3');
    assert.not.equal(channelExporter(first.client, other), serverB);
    assert.not.equal(channelExporter(second.client, nonce), serverB);
    // The label is part of the recipe: a different label is a different value.
    assert.not.equal(
      new Uint8Array(first.client.exportKeyingMaterial(32, `${EXPORTER_LABEL}x`, Buffer.from(nonce))),
      serverB,
    );
  } finally {
    first.close();
    second.close();
  }
});

test.run();
