import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeCredentialFile } from '../../firmware-shims/tpm/credential-file.ts';
import { type AttestationKeys, provisionAttestationKeys } from '../../firmware-shims/tpm/provision.ts';
import { Tpm } from '../../firmware-shims/tpm/tpm.ts';
import { Reader, toHex } from '../../shared/tpm/bytes.ts';
import { TPM_ALG, TPM_CC, TPM_HT, TPM_RH, TPM_SE, TPMA_SESSION } from '../../shared/tpm/constants.ts';
import { makeCredential } from '../../shared/tpm/credential.ts';
import type { PcrSelection } from '../../shared/tpm/pcr-selection.ts';
import { type Swtpm, startSwtpm } from '../support/swtpm.ts';
import { tempDir } from '../support/tmp.ts';
import { quoteForCheckquote } from './fixture.ts';
import { commandCode, type Interposer, startInterposer } from './interposer.ts';

// tpm2-tools as the oracle for the bus session: a quote made in our salted session passes
// tpm2_checkquote, and tpm2_activatecredential in a salted session the tools start themselves
// puts on the bus the same kind of traffic ours does (a salt encrypted to the EK, an HMAC
// session with response encryption), with the credential nowhere in it.

const run = promisify(execFile);
const EK_HANDLE = 0x81010001;
const hex = (h: number) => `0x${h.toString(16)}`;

const t = suite('TPM bus: our salted session beside tpm2-tools');
let swtpm: Swtpm;
let interposer: Interposer;
let tpm: Tpm;
let keys: AttestationKeys;
let dir: string;
/** Commands seen by the interposer since the last reset, in order. */
let commands: Uint8Array[] = [];

t.before(async () => {
  swtpm = await startSwtpm();
  interposer = await startInterposer(swtpm);
  interposer.alter = (command, response) => {
    commands.push(command);
    return response;
  };
  tpm = await Tpm.open(interposer.tcti);
  keys = await provisionAttestationKeys(tpm, { ek: 'ecc' });
  // tpm2-tools need the EK at a handle; ours is deterministic, so persisting it gives them the same key.
  const ek = await tpm.createPrimaryEk('ecc');
  try {
    await tpm.evictControl(ek.handle, EK_HANDLE);
  } finally {
    await tpm.flush(ek.handle);
  }
  dir = tempDir('bus-tools');
});

t.after(async () => {
  await tpm?.close();
  await interposer?.close();
  await swtpm?.stop();
});

/** A tpm2-tools command through the interposer. */
async function tools(args: string[]): Promise<string> {
  const [tool, ...rest] = args;
  try {
    const { stdout } = await run(tool!, rest, {
      env: { ...process.env, TPM2TOOLS_TCTI: interposer.tcti },
      cwd: dir,
    });
    return stdout;
  } catch (err) {
    throw new Error(
      `${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`,
    );
  }
}

interface StartAuthSessionCommand {
  tpmKey: number;
  bind: number;
  saltSize: number;
  sessionType: number;
  /** algorithm, keyBits, mode; [NULL] when the session encrypts nothing. */
  symmetric: number[];
  authHash: number;
}

function parseStartAuthSession(command: Uint8Array): StartAuthSessionCommand {
  const r = new Reader(command, 'TPM2_StartAuthSession command');
  r.bytes(10, 'header');
  const tpmKey = r.u32('tpmKey');
  const bind = r.u32('bind');
  r.tpm2b('nonceCaller');
  const saltSize = r.tpm2b('encryptedSalt').length;
  const sessionType = r.u8('sessionType');
  const algorithm = r.u16('algorithm');
  const symmetric = algorithm === TPM_ALG.NULL ? [algorithm] : [algorithm, r.u16('keyBits'), r.u16('mode')];
  return { tpmKey, bind, saltSize, sessionType, symmetric, authHash: r.u16('authHash') };
}

/** The first session of a command with `handles` handles: its handle and attributes. */
function firstSession(
  command: Uint8Array,
  handles: number,
): { handle: number; attributes: number; hmac: number } {
  const r = new Reader(command, 'command');
  r.bytes(10 + 4 * handles + 4, 'header, handles, authorizationSize');
  const handle = r.u32('sessionHandle');
  r.tpm2b('nonce');
  const attributes = r.u8('attributes');
  return { handle, attributes, hmac: r.tpm2b('hmac').length };
}

const only = (cc: number) => commands.filter((c) => commandCode(c) === cc);
/** The HMAC session started (the EK's policy session is started too, unsalted). */
const hmacSessionStart = () =>
  only(TPM_CC.StartAuthSession)
    .map(parseStartAuthSession)
    .find((s) => s.sessionType === TPM_SE.HMAC)!;

t('a quote made in our salted session passes tpm2_checkquote', async () => {
  const selection: PcrSelection = [{ hash: 'sha256', pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 16] }];
  const { args } = await quoteForCheckquote(tpm, keys, dir, selection);
  assert.ok(tpm.busSessionHandle !== undefined, 'made in the bus session');
  await tools(['tpm2_checkquote', ...args]);
});

t(
  'tpm2_activatecredential in a salted session: same kind of traffic as ours, no credential on the bus',
  async () => {
    const ours = randomBytes(32);
    const theirs = randomBytes(32);
    const credFile = join(dir, 'theirs.cred');
    await writeFile(credFile, encodeCredentialFile(makeCredential(keys.ek.public, keys.ak.name, theirs)));

    // Ours, in a session started for it.
    await tpm.endBusSession();
    commands = [];
    interposer.clearRecording();
    const made = makeCredential(keys.ek.public, keys.ak.name, ours);
    const ek = await tpm.createPrimaryEk('ecc');
    const got = await tpm
      .activateCredential(keys.ak.handle, ek.handle, made.blob, made.secret)
      .finally(() => tpm.flush(ek.handle));
    assert.is(toHex(got), toHex(ours));
    const ourStart = hmacSessionStart();
    const ourUse = firstSession(only(TPM_CC.ActivateCredential)[0]!, 2);
    const ourTraffic = interposer.recorded();
    // Free swtpm's session slots for the tools (no resource manager here).
    await tpm.endBusSession();

    // Theirs: salted to the same EK, unbound, the EK's Name checked (-n), encryption on.
    const nameFile = join(dir, 'ek.name');
    await writeFile(nameFile, tpm.pinnedEk!.name);
    const salted = join(dir, 'salted.ctx');
    const policy = join(dir, 'policy.ctx');
    const out = join(dir, 'theirs.out');
    commands = [];
    interposer.clearRecording();
    // biome-ignore format: flag/value pairs
    await tools(['tpm2_startauthsession', '--hmac-session', '--tpmkey-context', hex(EK_HANDLE), '-n', nameFile,
    '-S', salted]);
    try {
      await tools(['tpm2_sessionconfig', salted, '--enable-encrypt', '--enable-decrypt']);
      await tools(['tpm2_startauthsession', '--policy-session', '-S', policy]);
      await tools(['tpm2_policysecret', '-S', policy, '-c', 'e']);
      // biome-ignore format: flag/value pairs
      await tools(['tpm2_activatecredential', '-c', hex(keys.ak.handle), '-C', hex(EK_HANDLE), '-i', credFile,
      '-o', out, '-p', `session:${salted}`, '-P', `session:${policy}`]);
    } finally {
      await tools(['tpm2_flushcontext', salted]).catch(() => undefined);
      await tools(['tpm2_flushcontext', policy]).catch(() => undefined);
    }
    assert.is(toHex(new Uint8Array(await readFile(out))), toHex(theirs));
    const theirStart = hmacSessionStart();
    const theirUse = firstSession(only(TPM_CC.ActivateCredential)[0]!, 2);
    const theirTraffic = interposer.recorded();

    for (const [who, start] of [
      ['ours', ourStart],
      ['tpm2-tools', theirStart],
    ] as const) {
      assert.is(
        start.tpmKey >>> 24 === TPM_HT.TRANSIENT || start.tpmKey === EK_HANDLE,
        true,
        `${who}: salted to the EK`,
      );
      assert.is(start.bind, TPM_RH.NULL, `${who}: unbound`);
      assert.is(start.saltSize, 2 + 32 + 2 + 32, `${who}: an ephemeral P-256 point as the encrypted salt`);
      assert.is(start.sessionType, TPM_SE.HMAC);
      assert.equal(start.symmetric, [TPM_ALG.AES, 128, TPM_ALG.CFB], `${who}: AES-128-CFB`);
      assert.is(start.authHash, TPM_ALG.SHA256);
    }
    for (const [who, use] of [
      ['ours', ourUse],
      ['tpm2-tools', theirUse],
    ] as const) {
      assert.is(use.handle >>> 24, TPM_HT.HMAC_SESSION, `${who}: the AK is authorised by the HMAC session`);
      assert.ok(use.attributes & TPMA_SESSION.encrypt, `${who}: the response is encrypted`);
      assert.ok(use.attributes & TPMA_SESSION.decrypt, `${who}: the credential blob is encrypted`);
      assert.is(use.hmac, 32, `${who}: a SHA-256 HMAC`);
    }
    assert.not.ok(ourTraffic.includes(Buffer.from(ours)), 'our credential is not on the bus');
    assert.not.ok(theirTraffic.includes(Buffer.from(theirs)), "the tools' credential is not on the bus");
  },
);

t('control: tpm2_activatecredential with a password for the AK puts the credential on the bus', async () => {
  const secret = randomBytes(32);
  const credFile = join(dir, 'clear.cred');
  await writeFile(credFile, encodeCredentialFile(makeCredential(keys.ek.public, keys.ak.name, secret)));
  const policy = join(dir, 'policy-clear.ctx');
  const out = join(dir, 'clear.out');
  interposer.clearRecording();
  await tools(['tpm2_startauthsession', '--policy-session', '-S', policy]);
  try {
    await tools(['tpm2_policysecret', '-S', policy, '-c', 'e']);
    // biome-ignore format: flag/value pairs
    await tools(['tpm2_activatecredential', '-c', hex(keys.ak.handle), '-C', hex(EK_HANDLE), '-i', credFile,
      '-o', out, '-P', `session:${policy}`]);
  } finally {
    await tools(['tpm2_flushcontext', policy]).catch(() => undefined);
  }
  assert.is(toHex(new Uint8Array(await readFile(out))), toHex(secret));
  assert.ok(interposer.recorded().includes(Buffer.from(secret)));
});

t.run();
