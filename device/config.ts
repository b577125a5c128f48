import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { McuConfigError, type McuPort, parseMcuPorts } from '../firmware-shims/serial/config.ts';
import type { SwPcr } from '../shared/protocol/messages.ts';
import { SW_PCR_MAX, SW_PCR_MIN } from '../shared/protocol/messages.ts';
import { parseReleaseKey, ReleaseKeyError, type TrustedKey } from '../shared/protocol/release-manifest.ts';
import { toHex } from '../shared/tpm/bytes.ts';
import { writeFileAtomic } from './atomic-file.ts';

// The agent's configuration, `DIR/agent.json`: written by `vigil-agent init`, read by every other
// command. It is validated as a whole before anything connects, so a typo stops the service at
// start with the field named, instead of surfacing as a strange failure in the middle of a round.

export const CONFIG_FILE = 'agent.json';
export const CONFIG_VERSION = 1;

/**
 * PCR 14 by default. On a Linux board PCRs 8-9 are GRUB's, 10 is IMA's, 11 systemd-stub's
 * unified kernel image, 12-13 systemd-stub's command line / credentials and system extensions,
 * 14 shim's MOK list (only when booted through shim, i.e. UEFI Secure Boot on x86/arm64 servers),
 * 15 systemd's machine-id / volume keys (systemd-pcrextend, v252+). A Raspberry Pi boots through
 * its own firmware, with no GRUB, no shim and no systemd-stub, so 14 stays untouched there and is
 * also the one a Pi OS userland (systemd may extend 15) does not use. See docs/agent.md.
 */
export const DEFAULT_SW_PCR: SwPcr = 14;
/** An owner-range persistent handle (0x81000000-0x817FFFFF), away from the TCG-reserved EK/SRK slots. */
export const DEFAULT_AK_HANDLE = 0x81000a01;
export const DEFAULT_PORT = 8883;

export type EkKind = 'ecc' | 'rsa';

export interface GatewayAddress {
  readonly host: string;
  readonly port: number;
  /** The URL as configured, e.g. `mqtts://gw.example:8883`. */
  readonly url: string;
}

export interface ClientCertificate {
  readonly cert: string;
  readonly key: string;
}

export interface AgentConfig {
  readonly version: typeof CONFIG_VERSION;
  readonly gateway: GatewayAddress;
  /** Absolute path of the pinned CA certificate (PEM) that signed the gateway's certificate. */
  readonly ca: string;
  /** Optional client certificate (PROTOCOL.md §1: defence in depth). */
  readonly clientCert?: ClientCertificate;
  /** tpm2-tools TCTI string: `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`. */
  readonly tpm: string;
  readonly ek: EkKind;
  readonly akHandle: number;
  readonly swPcr: SwPcr;
  /** Where the measurement logs are read from; configurable so tests can use fixtures. */
  readonly logs: { readonly ima: string; readonly boot: string };
  /** Directory whose files the software manifest covers; undefined = the agent's own code. */
  readonly softwareRoot?: string;
  /**
   * Release public keys pinned at provisioning (`init --release-key`): a release manifest signed by
   * none of them is never staged (PROTOCOL.md §6.1). Absent: this device accepts no release.
   */
  readonly releaseKeys?: readonly TrustedKey[];
  /** MCU sub-attesters on serial ports (`init --mcu`, docs/serial.md §7); absent: none. */
  readonly mcus?: readonly McuPort[];
}

export const DEFAULT_LOG_PATHS = {
  ima: '/sys/kernel/security/ima/ascii_runtime_measurements',
  boot: '/sys/kernel/security/tpm0/binary_bios_measurements',
} as const;

/** A configuration that cannot be used; the message names the file, the field and the value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Json = unknown;

function describe(v: Json): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}

class ConfigReader {
  constructor(
    readonly source: string,
    readonly obj: Record<string, Json>,
  ) {}

  fail(field: string, expected: string, got: Json): never {
    throw new ConfigError(`${this.source}: "${field}" must be ${expected}, got ${describe(got)}`);
  }

  string(field: string): string {
    const v = this.obj[field];
    if (typeof v !== 'string' || v === '') this.fail(field, 'a non-empty string', v);
    return v;
  }

  optString(field: string): string | undefined {
    return this.obj[field] === undefined ? undefined : this.string(field);
  }
}

/** Parses `mqtts://host[:port]`: plain mqtt:// is refused, the protocol is TLS only. */
export function parseGatewayUrl(url: string, field = 'gateway'): GatewayAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`"${field}": ${describe(url)} is not a URL; expected mqtts://HOST:PORT`);
  }
  if (u.protocol !== 'mqtts:') {
    throw new ConfigError(
      `"${field}": ${describe(url)} uses ${u.protocol.replace(/:$/, '')}; only mqtts:// is allowed (vigil/1 is TLS 1.3 only)`,
    );
  }
  if (u.hostname === '')
    throw new ConfigError(`"${field}": ${describe(url)} has no host; expected mqtts://HOST:PORT`);
  if (
    u.username !== '' ||
    u.password !== '' ||
    (u.pathname !== '' && u.pathname !== '/') ||
    u.search !== ''
  ) {
    throw new ConfigError(
      `"${field}": ${describe(url)} carries credentials, a path or a query; expected only mqtts://HOST:PORT`,
    );
  }
  const port = u.port === '' ? DEFAULT_PORT : Number(u.port);
  // URL keeps IPv6 literals bracketed; net.connect wants them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port, url: `mqtts://${u.host}${u.port === '' ? `:${DEFAULT_PORT}` : ''}` };
}

export function parseSwPcr(v: Json, field = 'swPcr'): SwPcr {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < SW_PCR_MIN || v > SW_PCR_MAX) {
    throw new ConfigError(
      `"${field}" must be a PCR from ${SW_PCR_MIN} to ${SW_PCR_MAX} (zero at reset, not resettable from locality 0), got ${describe(v)}`,
    );
  }
  return v as SwPcr;
}

export function parseAkHandle(v: Json, field = 'akHandle'): number {
  const n = typeof v === 'string' && /^0x[0-9a-f]{8}$/i.test(v) ? Number.parseInt(v.slice(2), 16) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0x81000000 || n > 0x817fffff) {
    throw new ConfigError(
      `"${field}" must be an owner persistent handle 0x81000000 to 0x817FFFFF (e.g. "0x81000A01"), got ${describe(v)}`,
    );
  }
  return n;
}

export function parseEkKind(v: Json, field = 'ek'): EkKind {
  if (v !== 'ecc' && v !== 'rsa') {
    throw new ConfigError(
      `"${field}" must be "ecc" (P-256, preferred) or "rsa" (RSA-2048), got ${describe(v)}`,
    );
  }
  return v;
}

export function formatHandle(handle: number): string {
  return `0x${handle.toString(16).toUpperCase().padStart(8, '0')}`;
}

/**
 * `releaseKeys` in agent.json: `[{kid, key}]`, `key` the base64 DER SubjectPublicKeyInfo and `kid`
 * its key id in hex (PROTOCOL.md §6.1), kept beside it so an operator can read which keys are
 * pinned; a kid that does not match its key is refused rather than trusted.
 */
export function parseReleaseKeys(v: Json, source: string): TrustedKey[] {
  if (!Array.isArray(v))
    throw new ConfigError(`${source}: "releaseKeys" must be a list of {"kid", "key"}, got ${describe(v)}`);
  return v.map((entry, i) => {
    const field = `releaseKeys[${i}]`;
    const e = entry as { kid?: unknown; key?: unknown } | null;
    if (typeof e?.key !== 'string' || typeof e.kid !== 'string')
      throw new ConfigError(
        `${source}: "${field}" must be {"kid": HEX, "key": BASE64 SPKI}, got ${describe(entry)}`,
      );
    let key: TrustedKey;
    try {
      key = parseReleaseKey(new Uint8Array(Buffer.from(e.key, 'base64')), `${source}: "${field}".key`);
    } catch (err) {
      if (err instanceof ReleaseKeyError) throw new ConfigError(err.message);
      throw err;
    }
    if (toHex(key.kid) !== e.kid.toLowerCase())
      throw new ConfigError(
        `${source}: "${field}".kid is ${e.kid} but its key's id is ${toHex(key.kid)}: re-run "vigil-agent init --release-key FILE"`,
      );
    return key;
  });
}

/** The JSON form of pinned release keys (see parseReleaseKeys). */
export function releaseKeysJson(keys: readonly TrustedKey[]): { kid: string; key: string }[] {
  return keys.map((k) => ({
    kid: toHex(k.kid),
    key: k.key.export({ format: 'der', type: 'spki' }).toString('base64'),
  }));
}

function parseMcus(v: Json, source: string): McuPort[] {
  try {
    return parseMcuPorts(v);
  } catch (e) {
    if (e instanceof McuConfigError) throw new ConfigError(`${source}: ${e.message}`);
    throw e;
  }
}

/** Validates a parsed agent.json. Relative paths are resolved against `dir`. */
export function parseConfig(raw: Json, dir: string, source = join(dir, CONFIG_FILE)): AgentConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${source}: expected a JSON object, got ${describe(raw)}`);
  }
  const r = new ConfigReader(source, raw as Record<string, Json>);
  if (r.obj.version !== CONFIG_VERSION) r.fail('version', String(CONFIG_VERSION), r.obj.version);
  const path = (v: string) => (isAbsolute(v) ? v : resolve(dir, v));
  let gateway: GatewayAddress;
  try {
    gateway = parseGatewayUrl(r.string('gateway'));
  } catch (e) {
    throw new ConfigError(`${source}: ${(e as Error).message}`);
  }
  const within = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw e instanceof ConfigError && !e.message.startsWith(source)
        ? new ConfigError(`${source}: ${e.message}`)
        : e;
    }
  };
  const certPath = r.optString('clientCert');
  const keyPath = r.optString('clientKey');
  if ((certPath === undefined) !== (keyPath === undefined)) {
    r.fail(
      certPath === undefined ? 'clientCert' : 'clientKey',
      'given together with the other of clientCert/clientKey',
      undefined,
    );
  }
  const logs = r.obj.logs ?? {};
  if (typeof logs !== 'object' || logs === null || Array.isArray(logs)) {
    r.fail('logs', 'an object {"ima": PATH, "boot": PATH}', logs);
  }
  const logReader = new ConfigReader(`${source} logs`, logs as Record<string, Json>);
  const softwareRoot = r.optString('softwareRoot');
  return {
    version: CONFIG_VERSION,
    gateway,
    ca: path(r.string('ca')),
    ...(certPath !== undefined &&
      keyPath !== undefined && { clientCert: { cert: path(certPath), key: path(keyPath) } }),
    tpm: r.string('tpm'),
    ek: within(() => parseEkKind(r.obj.ek ?? 'ecc')),
    akHandle: within(() => parseAkHandle(r.obj.akHandle ?? DEFAULT_AK_HANDLE)),
    swPcr: within(() => parseSwPcr(r.obj.swPcr ?? DEFAULT_SW_PCR)),
    logs: {
      ima: path(logReader.optString('ima') ?? DEFAULT_LOG_PATHS.ima),
      boot: path(logReader.optString('boot') ?? DEFAULT_LOG_PATHS.boot),
    },
    ...(softwareRoot !== undefined && { softwareRoot: path(softwareRoot) }),
    ...(r.obj.releaseKeys !== undefined && { releaseKeys: parseReleaseKeys(r.obj.releaseKeys, source) }),
    ...(r.obj.mcus !== undefined && { mcus: parseMcus(r.obj.mcus, source) }),
  };
}

/** The JSON written to agent.json (handles in hex, as an operator reads them in tpm2-tools). */
export function configJson(c: AgentConfig): Record<string, Json> {
  return {
    version: c.version,
    gateway: c.gateway.url,
    ca: c.ca,
    ...(c.clientCert && { clientCert: c.clientCert.cert, clientKey: c.clientCert.key }),
    tpm: c.tpm,
    ek: c.ek,
    akHandle: formatHandle(c.akHandle),
    swPcr: c.swPcr,
    logs: { ima: c.logs.ima, boot: c.logs.boot },
    ...(c.softwareRoot !== undefined && { softwareRoot: c.softwareRoot }),
    ...(c.releaseKeys?.length && { releaseKeys: releaseKeysJson(c.releaseKeys) }),
    ...(c.mcus?.length && { mcus: c.mcus }),
  };
}

export function loadConfig(dir: string): AgentConfig {
  const file = join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(`${file} does not exist: run "vigil-agent init --dir ${dir} ..." first`);
    }
    throw new ConfigError(`${file} cannot be read (${code ?? (e as Error).message}): check its permissions`);
  }
  let raw: Json;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `${file} is not valid JSON (${(e as Error).message}): fix it or re-run "vigil-agent init"`,
    );
  }
  return parseConfig(raw, dir, file);
}

export function saveConfig(dir: string, c: AgentConfig): void {
  writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(configJson(c), null, 2)}\n`, { mode: 0o640 });
}
