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

Operator commands (talk to the running gateway's API; see docs/operator.md):
  vigil-gateway attest (--all | --label K=V | ID...) [--timeout DURATION] [--json]
      Attest now on the devices' live connections; exit 0 iff every device is affirming.
  vigil-gateway devices [--label K=V] [--json]
  vigil-gateway show ID [--rounds N] [--json]
  vigil-gateway label ID [K=V...] [--remove K]...
  vigil-gateway admit --ek FILE|HASH [--note TEXT] | --list
  vigil-gateway revoke HASH|ID
  vigil-gateway release add NAME VERSION DIGEST | add [NAME VERSION] --manifest FILE|DIR
  vigil-gateway release list | remove NAME VERSION
  Every operator command takes --dir DIR (for the API address and token) and --api URL.

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
