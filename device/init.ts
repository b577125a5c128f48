import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { McuPort } from '../firmware-shims/serial/config.ts';
import { provisionAttestationKeys } from '../firmware-shims/tpm/provision.ts';
import { deviceIdentity } from '../shared/protocol/identity.ts';
import { parseReleaseKey, ReleaseKeyError, type TrustedKey } from '../shared/protocol/release-manifest.ts';
import { toHex } from '../shared/tpm/bytes.ts';
import {
  type AgentConfig,
  CONFIG_VERSION,
  ConfigError,
  DEFAULT_AK_HANDLE,
  DEFAULT_LOG_PATHS,
  DEFAULT_SW_PCR,
  type EkKind,
  parseConfig,
  parseGatewayUrl,
  releaseKeysJson,
  saveConfig,
} from './config.ts';
import { readState, STATE_VERSION, writeState } from './state.ts';
import { TpmAccess } from './tpm-access.ts';

// `vigil-agent init`: provisioning. Makes sure the TPM holds the EK (recreated from its template)
// and a persistent AK, pins the gateway's CA by copying it into DIR, and writes a validated
// configuration and an initial state. Everything is idempotent: running it again reuses the AK
// and rewrites the same files, so a provisioning script can simply run it on every boot.

export const PINNED_CA_FILE = 'ca.pem';

export interface InitOptions {
  readonly dir: string;
  /** `mqtts://HOST[:PORT]`. */
  readonly gateway: string;
  /** PEM file of the CA that signed the gateway's certificate. */
  readonly ca: string;
  /** TCTI: `device:/dev/tpmrm0` or `swtpm:host=...,port=...`. */
  readonly tpm: string;
  /** `auto` picks ECC P-256 when the TPM has it, else RSA-2048. */
  readonly ek?: EkKind | 'auto';
  readonly akHandle?: number;
  readonly swPcr?: number;
  readonly clientCert?: { readonly cert: string; readonly key: string };
  readonly logs?: { readonly ima?: string; readonly boot?: string };
  readonly softwareRoot?: string;
  /** Release public key files (PEM) to pin: releases signed by other keys are never staged. */
  readonly releaseKeys?: readonly string[];
  /** MCU sub-attesters on serial ports (`--mcu SLOT=PATH[@BAUD]`). */
  readonly mcus?: readonly McuPort[];
}

export interface InitResult {
  readonly config: AgentConfig;
  readonly deviceId: string;
  readonly ekHash: string;
  /** Hex of the AK's Name. */
  readonly akName: string;
  readonly ekCertificate: boolean;
}

/** Reads the release keys to pin, refusing one that is not an Ed25519 or P-256 public key. */
function readReleaseKeys(files: readonly string[]): TrustedKey[] {
  const keys = new Map<string, TrustedKey>();
  for (const file of files) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(
        `--release-key ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    try {
      const key = parseReleaseKey(pem, `--release-key ${file}`);
      keys.set(toHex(key.kid), key);
    } catch (e) {
      if (e instanceof ReleaseKeyError) throw new ConfigError(e.message);
      throw e;
    }
  }
  return [...keys.values()];
}

function checkCa(path: string): void {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (e) {
    throw new ConfigError(
      `--ca ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  try {
    const cert = new X509Certificate(pem);
    if (!cert.ca) {
      throw new ConfigError(
        `--ca ${path} is a certificate for ${cert.subject.replace(/\n/g, ', ')} but not a CA certificate; pass the gateway's ca.pem`,
      );
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(
      `--ca ${path} is not a PEM X.509 certificate (${(e as Error).message}); pass the gateway's ca.pem`,
    );
  }
}

export async function initAgent(o: InitOptions): Promise<InitResult> {
  const dir = resolve(o.dir);
  parseGatewayUrl(o.gateway, '--gateway');
  checkCa(o.ca);
  const releaseKeys = readReleaseKeys(o.releaseKeys ?? []);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const pinned = join(dir, PINNED_CA_FILE);
  if (resolve(o.ca) !== pinned) copyFileSync(o.ca, pinned);

  const tpm = new TpmAccess(o.tpm);
  try {
    const keys = await tpm.run((t) =>
      provisionAttestationKeys(t, { ek: o.ek ?? 'auto', akHandle: o.akHandle ?? DEFAULT_AK_HANDLE }),
    );
    // Validated through the same parser `run` uses, so init cannot write what run would refuse.
    const config = parseConfig(
      {
        version: CONFIG_VERSION,
        gateway: o.gateway,
        ca: PINNED_CA_FILE,
        ...(o.clientCert && { clientCert: resolve(o.clientCert.cert), clientKey: resolve(o.clientCert.key) }),
        tpm: o.tpm,
        ek: keys.ek.kind,
        akHandle: keys.ak.handle,
        swPcr: o.swPcr ?? DEFAULT_SW_PCR,
        logs: {
          ima: resolve(o.logs?.ima ?? DEFAULT_LOG_PATHS.ima),
          boot: resolve(o.logs?.boot ?? DEFAULT_LOG_PATHS.boot),
        },
        ...(o.softwareRoot !== undefined && { softwareRoot: resolve(o.softwareRoot) }),
        ...(releaseKeys.length > 0 && { releaseKeys: releaseKeysJson(releaseKeys) }),
        ...(o.mcus?.length && { mcus: o.mcus }),
      },
      dir,
      'vigil-agent init',
    );
    saveConfig(dir, config);
    const { deviceId, ekHash } = deviceIdentity(keys.ek.publicArea);
    let previous: ReturnType<typeof readState>;
    try {
      previous = readState(dir);
    } catch {
      previous = undefined;
    }
    if (previous?.deviceId !== deviceId) {
      writeState(dir, {
        version: STATE_VERSION,
        deviceId,
        ekHash,
        gateway: config.gateway.url,
        tpm: config.tpm,
        connection: { status: 'stopped', since: Date.now() },
      });
    }
    return {
      config,
      deviceId,
      ekHash,
      akName: Buffer.from(keys.ak.name).toString('hex'),
      ekCertificate: keys.ek.certificate !== undefined,
    };
  } finally {
    await tpm.close();
  }
}
