import { randomBytes } from 'node:crypto';
import { equalBytes } from '../../shared/tpm/bytes.ts';
import { HASH_SIZE, type HashName, TPM_SE, TPMA_SESSION } from '../../shared/tpm/constants.ts';
import { decryptFirstParameter, encryptFirstParameter } from '../../shared/tpm/parameter-encryption.ts';
import type { TpmPublic } from '../../shared/tpm/public.ts';
import { shareSecret } from '../../shared/tpm/secret-sharing.ts';
import {
  commandHmac,
  cpHash,
  responseHmac,
  rpHash,
  sessionKey,
  sessionValue,
} from '../../shared/tpm/session-auth.ts';
import type { Authorization, Command, CommandRunner, Response } from './command.ts';
import { startAuthSession } from './session.ts';
import { commandName, TpmBusError } from './tpm-error.ts';

const HASH: HashName = 'sha256';
const EMPTY = new Uint8Array(0);

export const RESPONSE_HMAC_INVALID =
  'response HMAC does not verify: the TPM bus altered the answer or the session is out of sync';

/** The key the salt is encrypted to: loaded in the TPM at `handle`, with the public area we trust. */
export interface SaltKey {
  handle: number;
  public: TpmPublic;
}

/** A command ready to send in the session, and how to check and decrypt its response. */
export interface SealedCommand {
  command: Command;
  /** Verifies the response HMAC (throws TpmBusError), rolls the nonce, decrypts; error responses pass as they are. */
  open(res: Response): Response;
}

/**
 * One salted, unbound HMAC session with AES-128-CFB parameter encryption (Part 1 §19.6, §21):
 * its key is known only to whoever holds the salt key's private part and to us. Nonces roll with
 * each command; one command at a time (the caller serialises), since each HMAC needs the nonce
 * of the previous response.
 */
export class SaltedSession {
  readonly handle: number;
  readonly #key: Uint8Array;
  readonly #random: (n: number) => Uint8Array;
  readonly #where: string;
  #nonceTPM: Uint8Array;

  private constructor(
    handle: number,
    key: Uint8Array,
    nonceTPM: Uint8Array,
    random: (n: number) => Uint8Array,
    where: string,
  ) {
    this.handle = handle;
    this.#key = key;
    this.#nonceTPM = nonceTPM;
    this.#random = random;
    this.#where = where;
  }

  /** TPM2_StartAuthSession with a fresh salt encrypted to `saltKey`, no bind, SHA-256, AES-128-CFB. */
  static async start(
    tpm: CommandRunner & { readonly description: string },
    saltKey: SaltKey,
    random: (n: number) => Uint8Array = randomBytes,
  ): Promise<SaltedSession> {
    const nonceCaller = random(HASH_SIZE[HASH]);
    const { seed: salt, secret } = shareSecret(saltKey.public, 'SECRET');
    const { handle, nonceTPM } = await startAuthSession(tpm, {
      tpmKey: saltKey.handle,
      type: TPM_SE.HMAC,
      nonceCaller,
      encryptedSalt: secret,
      aes128Cfb: true,
    });
    // A nonceTPM changed on the bus only yields a key the TPM does not have: the first HMAC fails.
    const key = sessionKey(HASH, salt, nonceTPM, nonceCaller);
    return new SaltedSession(handle, key, nonceTPM, random, tpm.description);
  }

  /**
   * `cmd` in this session: the session replaces the first authorisation (a password, whose value
   * joins the HMAC key), or joins as an audit session when the command authorises nothing.
   * `names` are the Names of `cmd.handles`, in order.
   */
  seal(cmd: Command, names: readonly Uint8Array[]): SealedCommand {
    const use = cmd.session ?? {};
    const auths = cmd.auths ?? [];
    const first = auths[0];
    if (first !== undefined && first.kind !== 'password')
      throw new Error(
        `${commandName(cmd.code)}: the bus session takes the place of a password authorisation, not a ${first.kind} one`,
      );
    const attributes =
      TPMA_SESSION.continueSession |
      (use.decrypt ? TPMA_SESSION.decrypt : 0) |
      (use.encrypt ? TPMA_SESSION.encrypt : 0) |
      (first === undefined ? TPMA_SESSION.audit : 0);
    const key = sessionValue(this.#key, first?.value ?? EMPTY);
    const nonceCaller = this.#random(HASH_SIZE[HASH]);
    const nonceTPM = this.#nonceTPM;
    let parameters = cmd.parameters ?? EMPTY;
    if (use.decrypt)
      parameters = encryptFirstParameter(
        { hash: HASH, key, nonceNewer: nonceCaller, nonceOlder: nonceTPM },
        parameters,
      );
    const hmac = commandHmac(
      HASH,
      key,
      cpHash(HASH, cmd.code, names, parameters),
      nonceCaller,
      nonceTPM,
      attributes,
    );
    const auth: Authorization = { kind: 'hmac', handle: this.handle, nonce: nonceCaller, attributes, hmac };
    const { session: _, ...rest } = cmd;
    const command: Command = { ...rest, auths: [auth, ...auths.slice(1)], parameters };
    return {
      command,
      open: (res) => {
        if (res.rc !== 0) return res;
        const s = res.sessions[0];
        const expected =
          s &&
          responseHmac(HASH, key, rpHash(HASH, cmd.code, res.parameters), s.nonce, nonceCaller, s.attributes);
        if (s === undefined || expected === undefined || !equalBytes(expected, s.hmac))
          throw new TpmBusError(
            'response-hmac-invalid',
            `${commandName(cmd.code)} on ${this.#where}`,
            RESPONSE_HMAC_INVALID,
          );
        this.#nonceTPM = s.nonce;
        if (!use.encrypt) return res;
        const plain = decryptFirstParameter(
          { hash: HASH, key, nonceNewer: s.nonce, nonceOlder: nonceCaller },
          res.parameters,
        );
        return { ...res, parameters: plain };
      },
    };
  }
}
