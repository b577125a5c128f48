import fc from 'fast-check';
import { test } from 'uvu';
import { parseResponse } from '../../firmware-shims/tpm/command.ts';
import { parseCredentialFile } from '../../firmware-shims/tpm/credential-file.ts';
import { parseQuoteAttest } from '../../shared/tpm/attest.ts';
import { fromHex, Reader, Writer } from '../../shared/tpm/bytes.ts';
import { TpmFormatError } from '../../shared/tpm/errors.ts';
import { marshalPcrSelection, parsePcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { marshalPublic, parsePublic, publicKey } from '../../shared/tpm/public.ts';
import { checkQuote } from '../../shared/tpm/quote-check.ts';
import { parseSignature, verifySignature } from '../../shared/tpm/signature.ts';
import { AK_TEMPLATE, ekTemplate } from '../../shared/tpm/templates.ts';

// Fixed seed: a failure reproduces; the runs stay fast (well under a second per parser).
const RUNS = { seed: 0x5eed, numRuns: 3000 };

// Captured from swtpm: a tpm2_quote attest and its ECDSA signature; an EK and a tpm2-tools AK public area.
const ATTEST = fromHex(
  'ff54434780180022000bdf84c5a7dc219996caa429623e6a00d098a23cc5bfa5d732ea9af2f2c3aaa4bb0005010203040500000000000002b5' +
    '000000010000000001201910230016363600000001000b03070001002038723a2e5e8a17aa7950dc008209944e898f69a7bd10a23c839d341e935fd5ca',
);
const SIGNATURE = fromHex(
  '0018000b0020018429aed9be18aaf41f70db2342712809c36fe94b8afd43e73f8d2f3a838ad302207f99525bb5a630fa2e4cbddca99ee90248e784402b4addd64c2213264a013bea',
);
const EK_PUBLIC = fromHex(
  '0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa0006008000430010000300100020' +
    '05f1e896bc9e18cd3087925a2211791ca3cefa53955b6ceb0a0908d244517fcf002056d4b8372e29dcc937ad3ef9fa28ca96a423310baa72f32740f80e71264aad2a',
);
const RESPONSE = new Writer()
  .u16(0x8002)
  .u32(10 + 4 + 4 + 6 + 5)
  .u32(0)
  .u32(0x80000001)
  .u32(6)
  .tpm2b(fromHex('01020304'))
  .tpm2b(new Uint8Array(0))
  .u8(1)
  .tpm2b(new Uint8Array(0))
  .finish();

/** Random bytes, and valid samples with bytes overwritten, inserted, deleted or cut. */
function inputs(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const mutated = fc
    .tuple(
      fc.constantFrom(...samples),
      fc.array(
        fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')),
        {
          maxLength: 6,
        },
      ),
      fc.option(fc.nat(), { nil: undefined }),
    )
    .map(([sample, edits, cut]) => {
      const bytes = [...sample];
      for (const [at, value, op] of edits) {
        const i = bytes.length === 0 ? 0 : at % bytes.length;
        if (op === 'set') bytes[i] = value;
        else if (op === 'insert') bytes.splice(i, 0, value);
        else bytes.splice(i, 1);
      }
      return Uint8Array.from(cut === undefined ? bytes : bytes.slice(0, cut % (bytes.length + 1)));
    });
  return fc.oneof(fc.uint8Array({ maxLength: 400 }), mutated);
}

function onlyFormatErrors(name: string, samples: Uint8Array[], parse: (b: Uint8Array) => unknown): void {
  test(`${name}: only TpmFormatError on random and mutated input`, () => {
    fc.assert(
      fc.property(inputs(samples), (bytes) => {
        try {
          parse(bytes);
        } catch (err) {
          if (!(err instanceof TpmFormatError)) throw err;
        }
      }),
      RUNS,
    );
  });
}

onlyFormatErrors(
  'parsePublic (+ publicKey)',
  [EK_PUBLIC, marshalPublic(ekTemplate('rsa')), marshalPublic(AK_TEMPLATE)],
  (b) => publicKey(parsePublic(b)),
);
onlyFormatErrors('parseQuoteAttest', [ATTEST], parseQuoteAttest);
onlyFormatErrors('parseSignature', [SIGNATURE], parseSignature);
onlyFormatErrors('parsePcrSelection', [marshalPcrSelection([{ hash: 'sha256', pcrs: [0, 7, 16] }])], (b) => {
  const r = new Reader(b);
  parsePcrSelection(r);
  r.end();
});
onlyFormatErrors('parseResponse', [RESPONSE], (b) => parseResponse(b, { handles: 1, sessions: 1 }));
onlyFormatErrors('parseCredentialFile', [fromHex('badcc0de00000001000401020304000105')], parseCredentialFile);

test('verifySignature and checkQuote never throw on mutated signatures', () => {
  const ak = parsePublic(EK_PUBLIC);
  fc.assert(
    fc.property(inputs([SIGNATURE]), (bytes) => {
      try {
        verifySignature(ak, ATTEST, parseSignature(bytes));
      } catch (err) {
        if (!(err instanceof TpmFormatError)) throw err;
      }
      checkQuote(ak, ATTEST, bytes, { qualifyingData: new Uint8Array(0) });
    }),
    RUNS,
  );
});

test.run();
