import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import pino from 'pino';
import { COSE_ALG } from '../../shared/cose/sign1.ts';
import { checkNotExpired, type SignedRelease } from '../../shared/protocol/release-manifest.ts';
import { toHex } from '../../shared/tpm/bytes.ts';
import { loadConfig } from '../config.ts';
import { importBundle } from '../releases/import.ts';
import { generateReleaseKey, type ReleaseKeyAlg, readReleaseKey } from '../releases/keys.ts';
import { packRelease } from '../releases/pack.ts';
import { readBundleFile } from '../releases/read-bundle.ts';
import { readRunFile } from '../run-file.ts';
import { openStore } from '../scale/open-store.ts';
import { duration, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { apiClient, gatewayDir } from './client.ts';
import { json } from './output.ts';

// `release keygen | pack | verify | import`: releases as files. keygen, pack and verify need no
// gateway (a build pipeline runs them); import runs on the gateway's host, because the artifact
// goes into the gateway directory.

/** What a command prints about a release, in text and in JSON. */
function describeRelease(r: SignedRelease, files: number) {
  const m = r.manifest;
  return {
    name: m.name,
    version: m.version,
    seq: m.seq,
    digest: toHex(m.digest),
    kid: toHex(r.kid),
    alg: r.alg === COSE_ALG.EdDSA ? 'EdDSA (Ed25519)' : 'ES256',
    artifact: { size: m.artifact.size, sha256: toHex(m.artifact.sha256), format: m.artifact.format, files },
    expires: m.expires === undefined ? null : new Date(m.expires).toISOString(),
    healthWindowMs: m.health?.windowMs ?? null,
  };
}

function describeText(d: ReturnType<typeof describeRelease>): string {
  return [
    `release   ${d.name} ${d.version} (seq ${d.seq})`,
    `digest    ${d.digest}`,
    `signed    kid ${d.kid}, ${d.alg}`,
    `artifact  ${d.artifact.size} bytes, ${d.artifact.files} files, sha256 ${d.artifact.sha256}`,
    `expires   ${d.expires ?? 'never'}`,
    `health    ${d.healthWindowMs === null ? 'no window' : `${d.healthWindowMs} ms window`}`,
    '',
  ].join('\n');
}

function required(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') throw new UsageError(`--${flag} is required`);
  return v;
}

export async function keygen(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    { out: { type: 'string' }, alg: { type: 'string' }, json: { type: 'boolean' } },
    false,
  );
  const out = required(values.out, 'out');
  const alg = (values.alg ?? 'ed25519') as ReleaseKeyAlg;
  if (alg !== 'ed25519' && alg !== 'es256')
    throw new UsageError(`--alg must be ed25519 (the default) or es256, got "${values.alg}"`);
  const key = generateReleaseKey(alg);
  try {
    writeFileSync(out, key.privatePem, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new Error(
        `${out} exists: a release key is never overwritten; choose another --out or remove it first`,
      );
    throw e;
  }
  const kid = toHex(key.kid);
  if (values.json) {
    process.stdout.write(json({ privateKey: resolve(out), alg, kid, publicKey: key.publicPem }));
    return 0;
  }
  // The public key alone on stdout, so that `... > release.pub` saves it.
  process.stdout.write(key.publicPem);
  process.stderr.write(
    `wrote ${out} (${alg === 'ed25519' ? 'Ed25519' : 'P-256'} release private key, mode 0600): keep it where releases are signed\n` +
      `kid ${kid}\n` +
      'The public key (above) goes to gateways (DIR/release-keys/*.pem) and devices (vigil-agent init --release-key FILE).\n',
  );
  return 0;
}

function privateKey(file: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(file));
  } catch (e) {
    throw new Error(
      `--key ${file}: not a private key PEM (${(e as Error).message}); make one with \`release keygen\``,
    );
  }
}

function uint(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new UsageError(`--${flag} must be an integer from 0, got "${text}"`);
  return n;
}

/** `--expires`: an ISO 8601 time, or a span from now such as 90d, 12h, 30m. */
export function parseExpires(text: string, now: number): number {
  const span = /^(\d+)(d|h|m)$/.exec(text);
  if (span)
    return now + Number(span[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[span[2] as 'd' | 'h' | 'm'];
  const t = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(t))
    throw new UsageError(
      `--expires must be an ISO 8601 time (2026-01-31T00:00:00Z) or a span such as 90d, got "${text}"`,
    );
  if (t <= now) throw new UsageError(`--expires ${text} is in the past`);
  return t;
}

export async function pack(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    {
      key: { type: 'string' },
      name: { type: 'string' },
      version: { type: 'string' },
      seq: { type: 'string' },
      tree: { type: 'string' },
      out: { type: 'string' },
      expires: { type: 'string' },
      'health-window': { type: 'string' },
      json: { type: 'boolean' },
    },
    false,
  );
  const now = Date.now();
  const expires = values.expires === undefined ? undefined : parseExpires(values.expires, now);
  const window = values['health-window'];
  const packed = await packRelease({
    key: privateKey(required(values.key, 'key')),
    name: required(values.name, 'name'),
    version: required(values.version, 'version'),
    seq: uint(required(values.seq, 'seq'), 'seq'),
    tree: required(values.tree, 'tree'),
    out: required(values.out, 'out'),
    ...(expires !== undefined && { expires }),
    ...(window !== undefined && { healthWindowMs: duration(window, '--health-window') }),
  });
  const d = describeRelease(packed.release, packed.files);
  process.stdout.write(
    values.json
      ? json({ bundle: resolve(values.out!), bytes: packed.bundleBytes, ...d })
      : `${describeText(d)}bundle    ${values.out} (${packed.bundleBytes} bytes)\n`,
  );
  return 0;
}

export async function verify(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { pubkey: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('release verify takes one BUNDLE');
  const key = readReleaseKey(required(values.pubkey, 'pubkey'));
  const contents = await readBundleFile(positionals[0]!, { trusted: [key] });
  const d = describeRelease(contents.release, contents.files);
  let expired: string | undefined;
  try {
    checkNotExpired(contents.release.manifest, Date.now());
  } catch (e) {
    expired = (e as Error).message;
  }
  process.stdout.write(values.json ? json({ ok: expired === undefined, ...d }) : describeText(d));
  if (expired !== undefined) {
    process.stderr.write(`vigil-gateway: ${expired}\n`);
    return 1;
  }
  if (!values.json) process.stdout.write('OK: signature, artifact and tree check out\n');
  return 0;
}

export async function importRelease(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...TARGET_OPTIONS, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('release import takes one BUNDLE');
  const dir = gatewayDir(values.dir);
  const config = loadConfig(dir);
  const refused: Error[] = [];
  // The gateway's own store, whichever engine gateway.json names (a running gateway shares it).
  const { store } = await openStore(config, pino({ level: 'silent' }), (e) => refused.push(e));
  let imported: Awaited<ReturnType<typeof importBundle>>;
  try {
    imported = await importBundle({ dir: config.dir, bundle: positionals[0]!, store, now: Date.now() });
  } finally {
    await store.close();
  }
  if (refused.length > 0)
    throw new Error(`the store refused the import: ${refused.map((e) => e.message).join('; ')}`);
  const r = imported.record;
  // A running gateway rebuilds its reference values when a release is registered through its API.
  let told = 'the gateway is not running: it applies the release when it starts';
  if (readRunFile(config.dir)) {
    const release = { name: r.name, version: r.version, digest: r.digest };
    try {
      await apiClient({ dir, api: values.api }).request('POST', '/v1/releases', release);
      told = 'registered with the running gateway';
    } catch (e) {
      throw new Error(
        `imported into ${config.dir}, but the running gateway could not register it (${(e as Error).message}): run \`vigil-gateway release add ${r.name} ${r.version} ${r.digest}\``,
      );
    }
  }
  const d = describeRelease(imported.release, imported.files);
  process.stdout.write(
    values.json
      ? json({ ...d, artifactPath: r.artifact.path, already: imported.already, registered: told })
      : `${imported.already ? 'already imported, registered again' : 'imported'}\n${describeText(d)}stored    ${r.artifact.path} in ${config.dir}\n${told}\n`,
  );
  return 0;
}
