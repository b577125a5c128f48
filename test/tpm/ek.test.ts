import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { publicKey } from '../../shared/tpm/public.ts';
import { AK_TEMPLATE, matchesTemplate } from '../../shared/tpm/templates.ts';
import { readTpm2bFile, startTpm, type TpmFixture } from './fixture.ts';

const plain = suite('EK against tpm2_createek');
let f: TpmFixture;

plain.before(async () => {
  f = await startTpm();
});
plain.after(async () => {
  await f?.stop();
});

for (const kind of ['ecc', 'rsa'] as const) {
  plain(`our ${kind} EK has the public area tpm2_createek makes`, async () => {
    const ours = await f.tpm.createPrimaryEk(kind);
    await f.tpm.flush(ours.handle);
    const pub = join(f.swtpm.stateDir, `ek-${kind}.pub`);
    await f.swtpm.tpm2(['tpm2_createek', '-G', kind, '-c', join(f.swtpm.stateDir, 'ek.ctx'), '-u', pub]);
    await f.swtpm.flushAll();
    assert.is(toHex(ours.publicArea), toHex(await readTpm2bFile(pub)));
  });
}

plain('provisioning is idempotent and leaves no transient object', async () => {
  const first = await provisionAttestationKeys(f.tpm, { ek: 'auto' });
  assert.is(first.ek.kind, 'ecc');
  assert.is(first.ek.certificate, undefined);
  const second = await provisionAttestationKeys(f.tpm, { ek: 'auto' });
  assert.is(toHex(second.ak.name), toHex(first.ak.name));
  assert.is(toHex(second.ek.publicArea), toHex(first.ek.publicArea));
  assert.ok((await f.tpm.persistentHandles()).includes(0x81000a01));
  assert.equal(await f.tpm.handles(0x80), []);
  assert.equal(await f.tpm.handles(0x03), []);
});

plain('an object at the AK handle that is not our AK is replaced', async () => {
  const ek = await f.tpm.createPrimaryEk('ecc');
  try {
    // An RSA EK is no AK: evict ours, persist it at the AK handle.
    await f.tpm.evictControl(0x81000a01, 0x81000a01);
    const rsa = await f.tpm.createPrimaryEk('rsa');
    try {
      await f.tpm.evictControl(rsa.handle, 0x81000a01);
    } finally {
      await f.tpm.flush(rsa.handle);
    }
  } finally {
    await f.tpm.flush(ek.handle);
  }
  const keys = await provisionAttestationKeys(f.tpm, { ek: 'ecc' });
  assert.ok(matchesTemplate(keys.ak.public, AK_TEMPLATE));
  assert.ok(matchesTemplate((await f.tpm.readPublic(0x81000a01)).public, AK_TEMPLATE));
  assert.equal(await f.tpm.handles(0x80), []);
});

plain.run();

const certs = suite('EK certificates from swtpm_setup --create-ek-cert');
let c: TpmFixture;

certs.before(async () => {
  c = await startTpm({ ekCert: true });
});
certs.after(async () => {
  await c?.stop();
});

for (const kind of ['ecc', 'rsa'] as const) {
  certs(`the ${kind} EK certificate certifies our EK and chains to the swtpm-localca CA`, async () => {
    const der = await c.tpm.readEkCertificate(kind);
    assert.ok(der, 'certificate present');
    const cert = new X509Certificate(der);
    const ek = await c.tpm.createPrimaryEk(kind);
    await c.tpm.flush(ek.handle);
    assert.ok(cert.publicKey.equals(publicKey(ek.public)), 'certificate key equals the EK we create');
    const ca = c.swtpm.ca!;
    const issuer = new X509Certificate(readFileSync(ca.issuer));
    const root = new X509Certificate(readFileSync(ca.root));
    assert.ok(cert.checkIssued(issuer) && cert.verify(issuer.publicKey), 'EK cert signed by the local CA');
    assert.ok(issuer.checkIssued(root) && issuer.verify(root.publicKey), 'local CA signed by the root');
  });
}

certs('provisioning returns the certificate with the EK', async () => {
  const keys = await provisionAttestationKeys(c.tpm, { ek: 'rsa' });
  assert.ok(keys.ek.certificate);
  assert.ok(new X509Certificate(keys.ek.certificate).publicKey.equals(publicKey(keys.ek.public)));
});

certs.run();
