import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCredentialFile, parseCredentialFile } from '../../firmware-shims/tpm/credential-file.ts';
import { type AttestationKeys, provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { TpmError } from '../../firmware-shims/tpm/tpm-error.ts';
import { toHex, tpm2b } from '../../shared/tpm/bytes.ts';
import { makeCredential } from '../../shared/tpm/credential.ts';
import { tempDir } from '../support/tmp.ts';
import { startTpm, type TpmFixture } from './fixture.ts';

const EK_HANDLE = 0x81010001;

for (const kind of ['ecc', 'rsa'] as const) {
  const t = suite(`credential activation, ${kind} EK`);
  let f: TpmFixture;
  let keys: AttestationKeys;
  let dir: string;

  t.before(async () => {
    f = await startTpm();
    keys = await provisionAttestationKeys(f.tpm, { ek: kind });
    // tpm2-tools need the EK at a handle; persisting our (deterministic) EK gives them the same key.
    const ek = await f.tpm.createPrimaryEk(kind);
    try {
      await f.tpm.evictControl(ek.handle, EK_HANDLE);
    } finally {
      await f.tpm.flush(ek.handle);
    }
    dir = tempDir(`cred-${kind}`);
  });

  t.after(async () => {
    await f?.stop();
  });

  async function toolsActivate(credFile: string): Promise<Uint8Array> {
    const session = join(dir, 'session.ctx');
    const out = join(dir, 'activated');
    await f.swtpm.tpm2(['tpm2_startauthsession', '--policy-session', '-S', session]);
    try {
      await f.swtpm.tpm2(['tpm2_policysecret', '-S', session, '-c', 'e']);
      // biome-ignore format: flag/value pairs
      await f.swtpm.tpm2(['tpm2_activatecredential', '-c', `0x${keys.ak.handle.toString(16)}`,
        '-C', `0x${EK_HANDLE.toString(16)}`, '-i', credFile, '-o', out, '-P', `session:${session}`]);
    } finally {
      await f.swtpm.tpm2(['tpm2_flushcontext', session]).catch(() => undefined);
      await f.swtpm.flushAll();
    }
    return new Uint8Array(await readFile(out));
  }

  t('our MakeCredential activates with tpm2_activatecredential', async () => {
    const secret = randomBytes(32);
    const cred = makeCredential(keys.ek.public, keys.ak.name, secret);
    const file = join(dir, 'ours.cred');
    await writeFile(file, encodeCredentialFile(cred));
    assert.is(toHex(await toolsActivate(file)), toHex(secret));
  });

  t('tpm2_makecredential output activates with our ActivateCredential', async () => {
    const secret = randomBytes(16);
    const ekPub = join(dir, 'ek.pub');
    const secretFile = join(dir, 'secret');
    const out = join(dir, 'theirs.cred');
    await writeFile(ekPub, tpm2b(keys.ek.publicArea));
    await writeFile(secretFile, secret);
    // biome-ignore format: flag/value pairs
    await f.swtpm.tpm2(['tpm2_makecredential', '-T', 'none', '-u', ekPub, '-s', secretFile,
      '-n', toHex(keys.ak.name), '-o', out]);
    const cred = parseCredentialFile(new Uint8Array(await readFile(out)));
    const ek = await f.tpm.createPrimaryEk(kind);
    try {
      const got = await f.tpm.activateCredential(keys.ak.handle, ek.handle, cred.blob, cred.secret);
      assert.is(toHex(got), toHex(secret));
    } finally {
      await f.tpm.flush(ek.handle);
    }
  });

  t('a credential made for another AK Name fails, on both sides', async () => {
    const otherName = Uint8Array.from(keys.ak.name);
    otherName[5]! ^= 1;
    const cred = makeCredential(keys.ek.public, otherName, randomBytes(32));
    const ek = await f.tpm.createPrimaryEk(kind);
    try {
      const err = await f.tpm.activateCredential(keys.ak.handle, ek.handle, cred.blob, cred.secret).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof TpmError, String(err));
      assert.match(err.rcName, 'TPM_RC_INTEGRITY');
    } finally {
      await f.tpm.flush(ek.handle);
    }
    const file = join(dir, 'other.cred');
    await writeFile(file, encodeCredentialFile(cred));
    let failed = false;
    await toolsActivate(file).catch(() => {
      failed = true;
    });
    assert.ok(failed, 'tpm2_activatecredential must refuse it too');
    assert.equal(await f.tpm.handles(0x80), [], 'no transient object left behind');
    assert.equal(await f.tpm.handles(0x03), [], 'no policy session left behind');
  });

  t.run();
}
