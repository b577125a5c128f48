import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSwtpmProcess } from '../../firmware-shims/swtpm/swtpm-process.ts';
import { freePortPair } from './ports.ts';
import { removeDir, tempDir } from './tmp.ts';

const run = promisify(execFile);

export interface Swtpm {
  /** `swtpm:host=127.0.0.1,port=P`, for tpm2-tools and for `Tpm.open`. */
  readonly tcti: string;
  readonly port: number;
  readonly ctrlPort: number;
  readonly stateDir: string;
  /** With `ekCert`: the swtpm-localca root and intermediate CA certificates (PEM paths). */
  readonly ca?: { root: string; issuer: string };
  stop(): Promise<void>;
  /** Stops swtpm and starts it again on the same state and ports (a TPM reset: transient objects are gone). */
  restart(): Promise<void>;
  /** Runs a tpm2-tools command, e.g. `tpm2(['tpm2_pcrread', 'sha256:0'])`; throws with its stderr on failure. */
  tpm2(args: string[], options?: { cwd?: string }): Promise<{ stdout: string; stderr: string }>;
  /** Flushes every transient object and loaded session: swtpm has no resource manager and tpm2-tools leave them. */
  flushAll(): Promise<void>;
}

export interface SwtpmOptions {
  /**
   * Manufacture the TPM with EK certificates from a fresh swtpm-localca CA: swtpm_setup writes the
   * RSA-2048 one at 0x01C00002; swtpm 0.7 only certifies a P-384 ECC EK, so the P-256 (L-2) EK gets a
   * certificate from the same CA, written to 0x01C0000A as a manufacturer would.
   */
  ekCert?: boolean;
}

// swtpm-localca keeps its CA in a state directory; the system one (/var/lib/swtpm-localca) belongs
// to tss and is shared, so each test TPM gets its own CA in its temp dir.
async function manufacture(
  root: string,
  stateDir: string,
): Promise<{ root: string; issuer: string; conf: string }> {
  const caDir = join(root, 'ca');
  mkdirSync(caDir);
  const localca = join(root, 'localca.conf');
  writeFileSync(
    localca,
    [
      `statedir = ${caDir}`,
      `signingkey = ${join(caDir, 'signkey.pem')}`,
      `issuercert = ${join(caDir, 'issuercert.pem')}`,
      `certserial = ${join(caDir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  const setup = join(root, 'swtpm_setup.conf');
  writeFileSync(
    setup,
    [
      'create_certs_tool = /usr/bin/swtpm_localca',
      `create_certs_tool_config = ${localca}`,
      'create_certs_tool_options = /etc/swtpm-localca.options',
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  try {
    await run('swtpm_setup', [
      '--tpm2',
      '--tpmstate',
      stateDir,
      '--create-ek-cert',
      '--create-platform-cert',
      '--config',
      setup,
      '--overwrite',
    ]);
  } catch (err) {
    throw new Error(`swtpm_setup failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
  return {
    root: join(caDir, 'swtpm-localca-rootca-cert.pem'),
    issuer: join(caDir, 'issuercert.pem'),
    conf: localca,
  };
}

async function certifyEccEk(s: Swtpm, root: string, localcaConf: string): Promise<void> {
  const pem = join(root, 'ek-ecc.pem');
  await s.tpm2(['tpm2_createek', '-G', 'ecc', '-c', join(root, 'ek-ecc.ctx'), '-u', pem, '-f', 'pem']);
  await s.flushAll();
  const jwk = createPublicKey(readFileSync(pem)).export({ format: 'jwk' });
  const hex = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64url').toString('hex');
  const certDir = join(root, 'ecc-cert');
  mkdirSync(certDir);
  // biome-ignore format: the options mirror what swtpm_setup passes to swtpm_localca
  await run('swtpm_localca', [
    '--type', 'ek', '--ek', `x=${hex(jwk.x)},y=${hex(jwk.y)},id=secp256r1`, '--dir', certDir,
    '--tpm-spec-family', '2.0', '--tpm-spec-level', '0', '--tpm-spec-revision', '164',
    '--tpm-manufacturer', 'id:00001014', '--tpm-model', 'swtpm', '--tpm-version', 'id:20191023',
    '--tpm2', '--configfile', localcaConf, '--optsfile', '/etc/swtpm-localca.options',
  ]);
  const cert = join(certDir, 'ek.cert');
  const size = readFileSync(cert).length;
  // biome-ignore format: flag/value pairs
  await s.tpm2(['tpm2_nvdefine', '0x01c0000a', '-C', 'p', '-s', String(size),
    '-a', 'ppwrite|ppread|ownerread|authread|no_da|platformcreate']);
  await s.tpm2(['tpm2_nvwrite', '0x01c0000a', '-C', 'p', '-i', cert]);
}

/** Starts a private swtpm on free loopback ports with its own state; `stop()` removes everything. */
export async function startSwtpm(opts: SwtpmOptions = {}): Promise<Swtpm> {
  const [port, ctrlPort] = await freePortPair();
  const root = tempDir('swtpm');
  const stateDir = join(root, 'state');
  mkdirSync(stateDir);
  const ca = opts.ekCert ? await manufacture(root, stateDir) : undefined;
  const proc = await startSwtpmProcess(stateDir, port, ctrlPort).catch((e: unknown) => {
    removeDir(root);
    throw e;
  });
  const { tcti } = proc;

  const tpm2 = async (
    args: string[],
    options: { cwd?: string } = {},
  ): Promise<{ stdout: string; stderr: string }> => {
    const [tool, ...rest] = args;
    if (tool === undefined || !tool.startsWith('tpm2_'))
      throw new Error(`tpm2(): first argument must be a tpm2_* tool, got ${tool}`);
    try {
      return await run(tool, rest, {
        env: { ...process.env, TPM2TOOLS_TCTI: tcti },
        cwd: options.cwd ?? root,
      });
    } catch (err) {
      const e = err as { stderr?: string; code?: number };
      throw new Error(
        `${tool} ${rest.join(' ')} failed (exit ${e.code}): ${e.stderr ?? (err as Error).message}`,
      );
    }
  };

  const s: Swtpm = {
    tcti,
    port,
    ctrlPort,
    stateDir,
    ...(ca ? { ca: { root: ca.root, issuer: ca.issuer } } : {}),
    tpm2,
    async flushAll() {
      await tpm2(['tpm2_flushcontext', '-t']);
      await tpm2(['tpm2_flushcontext', '-l']);
    },
    async stop() {
      await proc.stop();
      removeDir(root);
    },
    restart: () => proc.restart(),
  };
  try {
    if (ca) await certifyEccEk(s, root, ca.conf);
  } catch (err) {
    await s.stop();
    throw err;
  }
  return s;
}
