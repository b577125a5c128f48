import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type AttestationKeys, provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { Refusal } from '../../gateway/verifier/refusal.ts';
import {
  attestStage,
  pcrDigestStage,
  pcrSelectionStage,
  signatureStage,
} from '../../gateway/verifier/stages.ts';
import type { Claims } from '../../shared/protocol/index.ts';
import { equalBytes, toHex } from '../../shared/tpm/bytes.ts';
import type { HashName } from '../../shared/tpm/constants.ts';
import { objectName } from '../../shared/tpm/name.ts';
import type { PcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { parsePublic } from '../../shared/tpm/public.ts';
import { checkQuote } from '../../shared/tpm/quote-check.ts';
import { AK_TEMPLATE, matchesTemplate } from '../../shared/tpm/templates.ts';
import { tempDir } from '../support/tmp.ts';
import {
  parsePcrreadOutput,
  quoteForCheckquote,
  readTpm2bFile,
  startTpm,
  type TpmFixture,
} from './fixture.ts';

const t = suite('quote and PCRs against tpm2-tools');
let f: TpmFixture;
let keys: AttestationKeys;
let dir: string;

t.before(async () => {
  f = await startTpm();
  keys = await provisionAttestationKeys(f.tpm, { ek: 'ecc' });
  dir = tempDir('quote');
});

t.after(async () => {
  await f?.stop();
});

const sha256 = (s: string): Uint8Array => new Uint8Array(createHash('sha256').update(s).digest());

t('the provisioned AK has the AK template shape and its Name', async () => {
  assert.ok(matchesTemplate(keys.ak.public, AK_TEMPLATE));
  assert.equal(objectName(keys.ak.publicArea), keys.ak.name);
  assert.equal(await f.tpm.handles(0x80), [], 'no transient object left behind');
});

t('PCR_Read equals tpm2_pcrread after extends by either side', async () => {
  await f.tpm.pcrExtend(16, sha256('ours'));
  await f.swtpm.tpm2(['tpm2_pcrextend', `9:sha256=${toHex(sha256('theirs'))}`]);
  await f.tpm.pcrExtend(9, sha256('ours again'));
  const pcrs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 23];
  const ours = await f.tpm.pcrRead(pcrs);
  const { stdout } = await f.swtpm.tpm2(['tpm2_pcrread', `sha256:${pcrs.join(',')}`]);
  const theirs = parsePcrreadOutput(stdout).get('sha256');
  assert.ok(theirs);
  assert.is(ours.size, pcrs.length);
  for (const p of pcrs) assert.is(toHex(ours.get(p)!), theirs.get(p), `PCR ${p}`);
  assert.is.not(toHex(ours.get(16)!), '00'.repeat(32));
});

t('our quote over chosen PCRs and qualifying data passes tpm2_checkquote', async () => {
  // 11 PCRs: more than one TPML_DIGEST group in the tpm2-tools PCR file.
  const selection: PcrSelection = [{ hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 9, 16, 23] }];
  const { quote: q, qualifyingData, values, args } = await quoteForCheckquote(f.tpm, keys, dir, selection);
  await f.swtpm.tpm2(['tpm2_checkquote', ...args]);
  const check = checkQuote(keys.ak.public, q.attest, q.signature, {
    qualifyingData,
    selection,
    pcrValues: values,
  });
  assert.ok(check.ok);
});

async function toolsQuote(alg: 'ecc' | 'rsa', handle: number) {
  const pub = join(dir, `ak-${alg}.pub`);
  const ctx = join(dir, `ak-${alg}.ctx`);
  // swtpm has no resource manager: our bus session holds one of its three session slots, and
  // tpm2_createek needs all three. (On /dev/tpmrm0 the kernel swaps sessions in and out.)
  await f.tpm.endBusSession();
  await f.swtpm.tpm2(['tpm2_createek', '-c', '0x81010001', '-G', 'ecc']).catch(() => undefined);
  const scheme = alg === 'ecc' ? 'ecdsa' : 'rsassa';
  await f.swtpm.tpm2([
    'tpm2_createak',
    '-C',
    '0x81010001',
    '-c',
    ctx,
    '-G',
    alg,
    '-g',
    'sha256',
    '-s',
    scheme,
    '-u',
    pub,
  ]);
  await f.swtpm.tpm2(['tpm2_evictcontrol', '-c', ctx, `0x${handle.toString(16)}`]);
  await f.swtpm.flushAll();
  const qualifyingData = randomBytes(20);
  const msg = join(dir, `q-${alg}.msg`);
  const sig = join(dir, `q-${alg}.sig`);
  // biome-ignore format: flag/value pairs
  await f.swtpm.tpm2(['tpm2_quote', '-c', `0x${handle.toString(16)}`, '-l', 'sha256:0,9,16', '-q', toHex(qualifyingData),
    '-m', msg, '-s', sig, '-g', 'sha256']);
  return {
    ak: parsePublic(await readTpm2bFile(pub)),
    attest: new Uint8Array(await readFile(msg)),
    signature: new Uint8Array(await readFile(sig)),
    qualifyingData,
  };
}

/** Claims carrying just these PCR values (what the digest stage reads). */
const claimsOf = (pcrs: ReadonlyMap<number, Uint8Array>): Claims => ({
  nonce: new Uint8Array(32),
  pcrs,
  sw: { name: 'x', version: '1' },
  logs: {},
});

for (const alg of ['ecc', 'rsa'] as const) {
  t(`a tpm2_quote by a tpm2-tools ${alg} AK passes our verifier; any flipped bit fails it`, async () => {
    const q = await toolsQuote(alg, alg === 'ecc' ? 0x81000b01 : 0x81000b02);
    const selection: PcrSelection = [{ hash: 'sha256', pcrs: [0, 9, 16] }];
    const values = new Map<HashName, Map<number, Uint8Array>>([['sha256', await f.tpm.pcrRead([0, 9, 16])]]);
    const expect = { qualifyingData: q.qualifyingData, selection, pcrValues: values };
    const good = checkQuote(q.ak, q.attest, q.signature, expect);
    assert.ok(good.ok, good.ok ? '' : `${good.failure}: ${good.detail}`);
    // The gateway's appraisal stages run the same steps on the same quote.
    const evidence = {
      t: 'evidence' as const,
      round: new Uint8Array(16),
      body: new Uint8Array(0),
      attest: q.attest,
      sig: q.signature,
    };
    const sig = signatureStage(q.ak, evidence);
    const parsed = attestStage(q.attest);
    pcrSelectionStage(parsed, [0, 9, 16]);
    pcrDigestStage(parsed, { ...claimsOf(values.get('sha256')!) }, [0, 9, 16], sig);
    assert.throws(
      () => pcrSelectionStage(parsed, [0, 9]),
      (e: unknown) => e instanceof Refusal && e.code === 'pcr-selection-mismatch',
    );

    const flip = (b: Uint8Array, bit: number): Uint8Array => {
      const c = Uint8Array.from(b);
      c[bit >> 3]! ^= 1 << (bit & 7);
      return c;
    };
    for (let bit = 0; bit < q.attest.length * 8; bit++) {
      assert.not.ok(checkQuote(q.ak, flip(q.attest, bit), q.signature, expect).ok, `attest bit ${bit}`);
    }
    for (let bit = 0; bit < q.signature.length * 8; bit++) {
      const r = checkQuote(q.ak, q.attest, flip(q.signature, bit), expect);
      // A flip in an ECDSA integer's leading zero byte cannot exist; every other flip must fail.
      assert.not.ok(r.ok, `signature bit ${bit}`);
    }
    for (let bit = 0; bit < q.qualifyingData.length * 8; bit++) {
      const r = checkQuote(q.ak, q.attest, q.signature, {
        ...expect,
        qualifyingData: flip(q.qualifyingData, bit),
      });
      assert.is(r.ok ? 'ok' : r.failure, 'binding-mismatch', `qualifying data bit ${bit}`);
    }
    const other = await f.tpm.pcrRead([1]);
    const wrongValues = new Map([
      ['sha256' as HashName, new Map([...values.get('sha256')!, [9, other.get(1)!]])],
    ]);
    const r = checkQuote(q.ak, q.attest, q.signature, { ...expect, pcrValues: wrongValues });
    assert.is(r.ok ? 'ok' : r.failure, 'pcr-digest-mismatch');
    assert.ok(equalBytes(good.ok ? good.attest.extraData : new Uint8Array(), q.qualifyingData));
  });
}

t('our quote carries the AK qualified signer and verifies with our verifier', async () => {
  const qualifyingData = randomBytes(32);
  const q = await f.tpm.quote(keys.ak.handle, qualifyingData, [{ hash: 'sha256', pcrs: [16] }]);
  const r = checkQuote(keys.ak.public, q.attest, q.signature, { qualifyingData });
  assert.ok(r.ok);
  const pub = await f.tpm.readPublic(keys.ak.handle);
  if (r.ok) assert.equal(r.attest.qualifiedSigner, pub.qualifiedName);
});

t.run();
