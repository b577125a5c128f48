import { isAbsolute, join, resolve } from 'node:path';
import { isManifestToken } from '../../shared/protocol/software-manifest.ts';
import { readJsonFile } from '../json-file.ts';

// `DIR/update.json`: the software this device updates and how it is run, written by whoever builds
// the device image (it knows the service names and the health probe). Kept apart from agent.json,
// which `vigil-agent init` writes at provisioning: the release keys pinned there are trust
// anchors, this file is integration. Without it the device answers every `stage` and `operate`
// with `unsupported`. Commands are argument vectors run without a shell.
//
//   {
//     "software": {
//       "name": "app", "version": "1.0.0",          name, and version of the tree provisioned
//       "slots": "/opt/app",                         slots a/ and b/, and the `current` link
//       "restart": ["systemctl", "restart", "app"],  run after each switch
//       "health": ["/opt/app/current/bin/health"],   exit 0 = healthy (optional)
//       "agent": false                               true: the agent itself is the software
//     },
//     "healthWindowMs": 30000, "healthIntervalMs": 5000, "commandTimeoutMs": 60000,
//     "operations": {"recipe": {"run": ["/usr/local/bin/switch-recipe"], "timeoutMs": 30000}}
//   }

export const UPDATE_CONFIG_FILE = 'update.json';

export interface OperationHandler {
  readonly run: readonly string[];
  readonly timeoutMs: number;
}

export interface UpdateConfig {
  readonly software: {
    readonly name: string;
    /** Version of the tree installed at provisioning (until the first release replaces it). */
    readonly version: string;
    /** Absolute directory holding slots `a/` and `b/` and the `current` link. */
    readonly slots: string;
    readonly restart: readonly string[];
    readonly health?: readonly string[];
    /** The agent is this software: a restart is the agent exiting for systemd to start it again. */
    readonly agent: boolean;
  };
  /** Health window when a release manifest names none. */
  readonly healthWindowMs: number;
  /** Time between health probes within the window. */
  readonly healthIntervalMs: number;
  /** Longest a restart or a health probe may run. */
  readonly commandTimeoutMs: number;
  readonly operations: Readonly<Record<string, OperationHandler>>;
}

export class UpdateConfigError extends Error {
  override readonly name = 'UpdateConfigError';
}

type Json = unknown;
const show = (v: Json) => (v === undefined ? 'nothing' : JSON.stringify(v));

function object(source: string, field: string, v: Json): Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UpdateConfigError(`${source}: "${field}" must be an object, got ${show(v)}`);
  return v as Record<string, Json>;
}

function argv(source: string, field: string, v: Json): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((a) => typeof a === 'string' && a !== ''))
    throw new UpdateConfigError(
      `${source}: "${field}" must be a command as a list of arguments, e.g. ["systemctl", "restart", "app"], got ${show(v)}`,
    );
  return v as string[];
}

function ms(source: string, field: string, v: Json, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new UpdateConfigError(
      `${source}: "${field}" must be milliseconds (an integer from 0), got ${show(v)}`,
    );
  return v;
}

function token(source: string, field: string, v: Json): string {
  if (typeof v !== 'string' || !isManifestToken(v))
    throw new UpdateConfigError(
      `${source}: "${field}" must be 1 to 128 printable ASCII characters without spaces, got ${show(v)}`,
    );
  return v;
}

/** Validates a parsed update.json; relative paths are resolved against `dir`. */
export function parseUpdateConfig(
  raw: Json,
  dir: string,
  source = join(dir, UPDATE_CONFIG_FILE),
): UpdateConfig {
  const top = object(source, '(top level)', raw);
  const sw = object(source, 'software', top.software);
  if (typeof sw.slots !== 'string' || sw.slots === '')
    throw new UpdateConfigError(`${source}: "software.slots" must be a directory, got ${show(sw.slots)}`);
  if (sw.agent !== undefined && typeof sw.agent !== 'boolean')
    throw new UpdateConfigError(`${source}: "software.agent" must be true or false, got ${show(sw.agent)}`);
  const ops = object(source, 'operations', top.operations ?? {});
  const operations: Record<string, OperationHandler> = {};
  for (const [name, v] of Object.entries(ops)) {
    token(source, `operations key`, name);
    const h = object(source, `operations.${name}`, v);
    operations[name] = {
      run: argv(source, `operations.${name}.run`, h.run),
      timeoutMs: ms(source, `operations.${name}.timeoutMs`, h.timeoutMs, 60_000),
    };
  }
  const defaults = { healthWindowMs: 30_000, healthIntervalMs: 5_000, commandTimeoutMs: 60_000 };
  return {
    software: {
      name: token(source, 'software.name', sw.name),
      version: token(source, 'software.version', sw.version),
      slots: isAbsolute(sw.slots) ? sw.slots : resolve(dir, sw.slots),
      restart: argv(source, 'software.restart', sw.restart),
      ...(sw.health !== undefined && { health: argv(source, 'software.health', sw.health) }),
      agent: sw.agent === true,
    },
    healthWindowMs: ms(source, 'healthWindowMs', top.healthWindowMs, defaults.healthWindowMs),
    healthIntervalMs: Math.max(
      1,
      ms(source, 'healthIntervalMs', top.healthIntervalMs, defaults.healthIntervalMs),
    ),
    commandTimeoutMs: ms(source, 'commandTimeoutMs', top.commandTimeoutMs, defaults.commandTimeoutMs),
    operations,
  };
}

/** DIR/update.json, or undefined when the device updates nothing. */
export function loadUpdateConfig(dir: string): UpdateConfig | undefined {
  const file = join(dir, UPDATE_CONFIG_FILE);
  const raw = readJsonFile(file, UpdateConfigError);
  return raw === undefined ? undefined : parseUpdateConfig(raw, dir, file);
}
