#!/usr/bin/env node
import { UsageError } from './commands/args.ts';
import { CommandError } from './commands/client.ts';
import { VERSION } from './version.ts';

// A thin dispatcher: each command lives in gateway/commands/ and is loaded only when used, so
// that `vigil-gateway devices` does not load the broker and the verifier.

const HELP = `vigil-gateway ${VERSION}: the Vigil edge gateway (MQTT broker, verifier, fleet posture)

Usage:
  vigil-gateway init  [--dir DIR] [--host NAME]... [--port N] [--api-port N]
                      [--database postgres://...] [--redis redis://...] [--gateway-id ID] [--health-port N]
      Create (or complete) a gateway directory: CA and server certificate, EAR signing key,
      operator token, default policy. Devices pin DIR/ca.pem. Safe to run again. --database and
      --redis join the gateway to a fleet sharing PostgreSQL and Redis (docs/scale.md).
  vigil-gateway start [--dir DIR] [--port N] [--api-port N]
      Run the gateway: MQTT over TLS 1.3 (default port 8883), operator API (default 8080).
  vigil-gateway backup --out FILE [--dir DIR]
      A consistent copy of the store, from the running gateway (or the file when none runs).
  vigil-gateway restore FILE [--dir DIR]
      Make DIR's store the backup in FILE (checked first; never while a gateway runs on DIR).

Operator commands (talk to the running gateway's API; see docs/operator.md):
  vigil-gateway attest (--all | --label K=V | ID...) [--timeout DURATION] [--json]
      Attest now on the devices' live connections; exit 0 iff every device is affirming.
  vigil-gateway devices [--label K=V] [--json]
  vigil-gateway show ID [--rounds N] [--json]
  vigil-gateway label ID [K=V...] [--remove K]...
  vigil-gateway admit --ek FILE|HASH [--note TEXT] | --list
  vigil-gateway revoke HASH|ID
  vigil-gateway mcu admit IDENTITY [--device ID] [--note TEXT] | revoke IDENTITY | list
      MCU sub-attesters by identity hash (\`vigil-agent mcus\` prints it); --device binds one
      to the device that carries it. Reference firmware per model: policy.json "mcus".
  vigil-gateway release add NAME VERSION DIGEST | add [NAME VERSION] --manifest FILE|DIR
  vigil-gateway release list | remove NAME VERSION
  vigil-gateway audit ROUND --out DIR
      Export a stored round for a third party to re-verify with tpm2-tools and openssl.
  Every operator command takes --dir DIR (for the API address and token) and --api URL.

Releases as signed bundles (docs/rollouts.md):
  vigil-gateway release keygen --out FILE [--alg ed25519|es256]
      A release signing key (private key to FILE, 0600); prints the public key and its kid.
  vigil-gateway release pack --key FILE --name N --version V --seq S --tree DIR --out BUNDLE
                             [--expires TIME|90d] [--health-window 30s]
      Measure, archive and sign a software tree into one bundle; needs no gateway.
  vigil-gateway release verify BUNDLE --pubkey FILE
      Check a bundle's signature, artifact and tree; exit 1 if anything is off.
  vigil-gateway release import BUNDLE [--dir DIR]
      On the gateway's host: check it against DIR/release-keys/*.pem, keep the artifact in
      DIR/artifacts/, register (name, version, digest) as a reference value.

Rollouts (docs/rollouts.md):
  vigil-gateway rollout start --swarm K=V --release NAME@VERSION [--waves 1,50%,100%]
                [--success P%] [--abort P%,min=N] [--barrier all|N|P%] [--required ID,...]
                [--timeout stage=30m,activate=10m,command=10m] [--force] [--json]
      Move a swarm to an imported release in waves; prints the rollout id.
  vigil-gateway rollout status ID [--json] [--watch]
  vigil-gateway rollout list [--json]
  vigil-gateway rollout pause|resume|cancel|rollback|commit ID
  vigil-gateway operate ROLLOUT NAME [--args JSON] [--at TIME|+30s] [--json]
      Release an operation to the converged swarm; exit 1, naming who is missing, when the
      barrier does not hold.

  vigil-gateway help | --version

DIR defaults to $VIGIL_GATEWAY_DIR, else ./vigil-gateway. Exit codes: 0 success, 1 failure
(or, for attest, a device not affirming), 2 usage error.
`;

type Command = (args: string[]) => Promise<number | undefined>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  init: async () => (await import('./commands/init.ts')).init,
  start: async () => (await import('./commands/start.ts')).start,
  attest: async () => (await import('./commands/attest.ts')).attest,
  devices: async () => (await import('./commands/devices.ts')).devices,
  show: async () => (await import('./commands/show.ts')).show,
  label: async () => (await import('./commands/label.ts')).label,
  admit: async () => (await import('./commands/admit.ts')).admit,
  revoke: async () => (await import('./commands/admit.ts')).revoke,
  release: async () => (await import('./commands/release.ts')).release,
  audit: async () => (await import('./commands/audit.ts')).audit,
  backup: async () => (await import('./commands/backup.ts')).backup,
  restore: async () => (await import('./commands/restore.ts')).restore,
  mcu: async () => (await import('./commands/mcu.ts')).mcu,
  rollout: async () => (await import('./commands/rollout.ts')).rollout,
  operate: async () => (await import('./commands/operate.ts')).operate,
};

async function main(argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) throw new UsageError(`unknown command "${command}"`);
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (e: unknown) => {
    const usage = e instanceof UsageError;
    const message =
      e instanceof CommandError && e.code
        ? `${e.message} [${e.code}]`
        : e instanceof Error
          ? e.message
          : String(e);
    process.stderr.write(
      `vigil-gateway: ${message}\n${usage ? '\nRun `vigil-gateway help` for usage.\n' : ''}`,
    );
    process.exitCode = usage ? 2 : 1;
  },
);
