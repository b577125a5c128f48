#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseAkHandle, parseEkKind, parseSwPcr } from './config.ts';
import { postureOf, readState } from './state.ts';

// vigil-agent: the device agent's command line. Only what a command needs is loaded: `status`
// reads two JSON files and never touches the TPM (the running agent owns it); the TPM stack, MQTT
// and the quote-file writer are imported by the commands that use them.

const DEFAULT_DIR = process.env.VIGIL_AGENT_DIR ?? '/var/lib/vigil-agent';

const USAGE = `vigil-agent: continuous TPM attestation of this device to a Vigil gateway

Usage:
  vigil-agent init --gateway mqtts://HOST:PORT --ca CA.pem --tpm TCTI [--dir DIR]
                   [--ek ecc|rsa|auto] [--ak-handle 0x81000A01] [--sw-pcr 14]
                   [--client-cert FILE --client-key FILE] [--ima FILE] [--boot-log FILE]
                   [--software-root DIR] [--release-key FILE]... [--mcu SLOT=PATH[@BAUD]]...
      Provision the TPM keys (idempotent), pin the CA and the release keys (each
      --release-key a public key PEM from \`vigil-gateway release keygen\`), write DIR/agent.json.
      Each --mcu names a serial port with an MCU sub-attester (docs/serial.md).
      Prints the device id and the EK hash to register with the gateway.
  vigil-agent run [--dir DIR] [--log-level info]
      Connect to the gateway and answer its challenges until stopped (SIGTERM).
      SIGHUP measures the software again.
  vigil-agent status [--dir DIR] [--json]
      Connection, last result and its expiry, device id, TPM in use.
  vigil-agent quote --nonce HEX --out DIR [--pcrs 0,7,14] [--dir DIR]
      Write a quote in the files tpm2_checkquote reads, and print the command that checks it.
  vigil-agent mcus [--dir DIR] [--json]
      Ask each configured MCU who it is: its identity hash (for \`vigil-gateway mcu admit\`),
      model and firmware digest (a reference value). Run it while the agent is stopped.
  vigil-agent manifest [--dir DIR]
      Print the software manifest this agent measures (its SHA-256 is the digest the gateway's
      reference values must allow).
  vigil-agent help

TCTI: device:/dev/tpmrm0 (a Pi with a dTPM) or swtpm:host=127.0.0.1,port=2321.
DIR defaults to $VIGIL_AGENT_DIR or /var/lib/vigil-agent.
`;

/** A mistake in how the command was called: printed with a pointer to `help`, exit code 2. */
class UsageError extends Error {}

type Options = Record<string, string | boolean | string[] | undefined>;

function parse(
  args: string[],
  options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>,
): Options {
  try {
    return parseArgs({ args, options: { dir: { type: 'string' }, ...options }, strict: true })
      .values as Options;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function required(o: Options, name: string): string {
  const v = o[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

const str = (o: Options, name: string) => (typeof o[name] === 'string' ? (o[name] as string) : undefined);
const dirOf = (o: Options) => str(o, 'dir') ?? DEFAULT_DIR;

async function init(args: string[]): Promise<void> {
  const o = parse(args, {
    gateway: { type: 'string' },
    ca: { type: 'string' },
    tpm: { type: 'string' },
    ek: { type: 'string' },
    'ak-handle': { type: 'string' },
    'sw-pcr': { type: 'string' },
    'client-cert': { type: 'string' },
    'client-key': { type: 'string' },
    ima: { type: 'string' },
    'boot-log': { type: 'string' },
    'software-root': { type: 'string' },
    'release-key': { type: 'string', multiple: true },
    mcu: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  });
  const ek = str(o, 'ek');
  const akHandle = str(o, 'ak-handle');
  const swPcr = str(o, 'sw-pcr');
  const cert = str(o, 'client-cert');
  const key = str(o, 'client-key');
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--client-cert and --client-key go together');
  const ima = str(o, 'ima');
  const boot = str(o, 'boot-log');
  const softwareRoot = str(o, 'software-root');
  const mcus = await mcuOptions((o.mcu as string[] | undefined) ?? []);
  const { initAgent } = await import('./init.ts');
  const r = await initAgent({
    dir: dirOf(o),
    gateway: required(o, 'gateway'),
    ca: required(o, 'ca'),
    tpm: required(o, 'tpm'),
    ...(ek !== undefined && { ek: ek === 'auto' ? 'auto' : parseEkKind(ek, '--ek') }),
    ...(akHandle !== undefined && { akHandle: parseAkHandle(akHandle, '--ak-handle') }),
    ...(swPcr !== undefined && { swPcr: parseSwPcr(Number(swPcr), '--sw-pcr') }),
    ...(cert !== undefined && key !== undefined && { clientCert: { cert, key } }),
    ...((ima !== undefined || boot !== undefined) && {
      logs: { ...(ima !== undefined && { ima }), ...(boot !== undefined && { boot }) },
    }),
    ...(softwareRoot !== undefined && { softwareRoot }),
    releaseKeys: (o['release-key'] as string[] | undefined) ?? [],
    mcus,
  });
  if (o.json) {
    console.log(
      JSON.stringify({
        deviceId: r.deviceId,
        ekHash: r.ekHash,
        akName: r.akName,
        ekCertificate: r.ekCertificate,
        releaseKeys: (r.config.releaseKeys ?? []).map((k) => Buffer.from(k.kid).toString('hex')),
      }),
    );
    return;
  }
  console.log(`device id  ${r.deviceId}`);
  console.log(`EK hash    ${r.ekHash}`);
  console.log(`AK name    ${r.akName}`);
  console.log(`EK cert    ${r.ekCertificate ? 'present in TPM NV' : 'none in TPM NV'}`);
  console.log(`config     ${dirOf(o)}/agent.json (gateway ${r.config.gateway.url}, swPcr ${r.config.swPcr})`);
  for (const k of r.config.releaseKeys ?? [])
    console.log(`release    key ${Buffer.from(k.kid).toString('hex')} pinned`);
  for (const m of r.config.mcus ?? []) console.log(`MCU        ${m.slot} on ${m.path}`);
  console.log('\nRegister the EK hash with the gateway (admission allowlist), then start the agent:');
  console.log('  systemctl enable --now vigil-agent   (or: vigil-agent run --dir ...)');
}

/** `--mcu SLOT=PATH[@BAUD]` options, each checked, then the list (repeated slots). */
async function mcuOptions(values: readonly string[]) {
  const { McuConfigError, parseMcuOption, parseMcuPorts } = await import(
    '../firmware-shims/serial/config.ts'
  );
  try {
    return parseMcuPorts(values.map(parseMcuOption), '--mcu');
  } catch (e) {
    if (e instanceof McuConfigError) throw new UsageError(e.message);
    throw e;
  }
}

async function mcus(args: string[]): Promise<number> {
  const o = parse(args, { json: { type: 'boolean' } });
  const dir = dirOf(o);
  const config = loadConfig(dir);
  const ports = config.mcus ?? [];
  if (ports.length === 0)
    throw new ConfigError(
      `${dir}/agent.json configures no MCU: add them with "vigil-agent init ... --mcu SLOT=PATH"`,
    );
  const { identifyMcus } = await import('../firmware-shims/serial/identify.ts');
  const reports = await identifyMcus(ports, 3000);
  if (o.json) {
    console.log(JSON.stringify(reports));
  } else {
    for (const r of reports) {
      if (r.ok) {
        console.log(`${r.slot} (${r.path}): model ${r.model}`);
        console.log(`  identity  ${r.identity}`);
        console.log(`  firmware  ${r.firmware}`);
      } else {
        console.log(`${r.slot} (${r.path}): ${r.fault}: ${r.detail}`);
      }
    }
    const state = readState(dir);
    const device = state?.deviceId ?? 'DEVICE_ID';
    const found = reports.filter((r) => r.ok);
    if (found.length > 0) {
      console.log('\nOn the gateway: admit each identity for this device, and allow its firmware per model');
      console.log('(policy.json "mcus": {"firmware": {MODEL: [DIGEST]}}):');
      for (const r of found)
        console.log(`  vigil-gateway mcu admit ${r.identity} --device ${device} --note ${r.slot}`);
    }
    if (reports.some((r) => !r.ok && r.fault === 'absent'))
      console.log('\nA port that cannot be opened may be held by the running agent: stop it first.');
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

async function run(args: string[]): Promise<void> {
  const o = parse(args, { 'log-level': { type: 'string' } });
  const dir = dirOf(o);
  const config = loadConfig(dir);
  const { pino } = await import('pino');
  const logger = pino({
    name: 'vigil-agent',
    level: str(o, 'log-level') ?? process.env.VIGIL_LOG_LEVEL ?? 'info',
  });
  const { startAgent } = await import('./agent.ts');
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent({ dir, config, logger });
  } catch (e) {
    // Logged as JSON for the journal as well as printed by main() for a human at a terminal.
    logger.fatal({ err: (e as Error).message }, 'agent could not start');
    throw e;
  }
  const stop = (signal: string) => {
    logger.info({ signal }, 'stopping');
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    agent
      .remeasure()
      .catch((e: Error) => logger.error({ err: e.message }, 'could not measure the software again'));
  });
}

function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

function status(args: string[]): void {
  const o = parse(args, { json: { type: 'boolean' } });
  const dir = dirOf(o);
  const config = loadConfig(dir);
  const state = readState(dir);
  const now = Date.now();
  if (state === undefined)
    throw new ConfigError(`${dir}/state.json does not exist: run "vigil-agent init" first`);
  const posture = postureOf(state, now);
  if (o.json) {
    console.log(JSON.stringify({ ...state, posture, now }));
    return;
  }
  const c = state.connection;
  const when = (t: number) =>
    `${new Date(t).toISOString()} (${ago(Math.abs(now - t))} ${t <= now ? 'ago' : 'from now'})`;
  console.log(`device id    ${state.deviceId}`);
  console.log(`EK hash      ${state.ekHash}`);
  console.log(`TPM          ${config.tpm} (AK 0x${config.akHandle.toString(16)}, swPcr ${config.swPcr})`);
  console.log(`gateway      ${config.gateway.url}`);
  const connection =
    c.status === 'disconnected'
      ? `disconnected since ${when(c.since)}: ${c.reason}; next attempt ${when(c.retryAt)}`
      : `${c.status} since ${when(c.since)}`;
  console.log(`connection   ${connection}${state.pid ? ` (pid ${state.pid})` : ''}`);
  const r = state.lastResult;
  console.log(
    `posture      ${posture}${r ? ` (round ${r.round.slice(0, 8)}…, ${r.reasons.length ? r.reasons.join(', ') : 'no reasons'})` : ''}`,
  );
  if (r) console.log(`expires      ${when(r.expires)}`);
  const round = state.lastRound;
  if (round) {
    console.log(
      round.outcome === 'answered'
        ? `last round   answered ${round.reason} round ${round.round.slice(0, 8)}… at ${when(round.at)}`
        : `last round   refused at ${when(round.at)}: ${round.detail}`,
    );
  }
  if (state.lastError) {
    console.log(
      `last error   ${state.lastError.code}: ${state.lastError.detail} at ${when(state.lastError.at)}`,
    );
  }
}

async function quote(args: string[]): Promise<void> {
  const o = parse(args, { nonce: { type: 'string' }, out: { type: 'string' }, pcrs: { type: 'string' } });
  const config = loadConfig(dirOf(o));
  const { parseNonce, writeQuoteFiles } = await import('./quote-command.ts');
  let nonce: Uint8Array;
  try {
    nonce = parseNonce(required(o, 'nonce'));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const pcrsArg = str(o, 'pcrs');
  const pcrs = pcrsArg?.split(',').map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n > 23)
      throw new UsageError(`--pcrs: ${JSON.stringify(p)} is not a PCR index 0 to 23`);
    return n;
  });
  const out = required(o, 'out');
  const r = await writeQuoteFiles(config, nonce, out, pcrs);
  console.log(`quote of sha256 PCRs ${r.pcrs.join(',')} written to ${out}; check it with:`);
  console.log(`  tpm2_checkquote ${r.checkquoteArgs.join(' ')}`);
}

async function manifest(args: string[]): Promise<void> {
  const o = parse(args, {});
  const dir = str(o, 'dir');
  const config = dir !== undefined ? loadConfig(dir) : undefined;
  const { configuredSource, measureSoftware } = await import('./software.ts');
  const m = measureSoftware(configuredSource(config?.softwareRoot));
  process.stdout.write(m.manifest);
  console.error(`# sha256 ${Buffer.from(m.digest).toString('hex')}  (${m.name} ${m.version})`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'init':
        await init(rest);
        return 0;
      case 'run':
        await run(rest);
        return -1; // keeps running; exits from its signal handlers
      case 'status':
        status(rest);
        return 0;
      case 'quote':
        await quote(rest);
        return 0;
      case 'manifest':
        await manifest(rest);
        return 0;
      case 'mcus':
        return await mcus(rest);
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(
          command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`,
        );
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`vigil-agent: ${e.message}\nRun "vigil-agent help" for usage.`);
      return 2;
    }
    console.error(`vigil-agent: ${(e as Error).message}`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// Success lets the event loop drain (stdout is flushed); a failure exits now, even if something
// (a half-open socket) would keep the process alive, so systemd sees the exit code at once.
if (code > 0) process.exit(code);
if (code === 0) process.exitCode = 0;
