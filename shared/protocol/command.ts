import type { CborMap } from '../cbor/value.ts';
import { malformed } from './errors.ts';
import type { Fields } from './fields.ts';
import {
  COMMAND_ID_BYTES,
  COMMAND_OPS,
  type Command,
  MAX_CHUNK_BYTES,
  MAX_RELEASE_MANIFEST_BYTES,
  type Operation,
} from './messages.ts';
import { isManifestToken } from './software-manifest.ts';

// `command` (PROTOCOL.md §6.2): the keys every command has, then those of its `op`. A key of
// another op is ignored like any unknown key; a missing or mistyped key of this op is malformed.

/** A staging may wait on a large artifact and a health window: a day is the outer bound. */
export const MAX_COMMAND_DEADLINE_MS = 24 * 60 * 60 * 1000;

function name(f: Fields, key: string, what: string): string {
  const v = f.text(key, 128);
  if (!isManifestToken(v))
    throw malformed(`${f.path}.${key}: expected ${what}, 1 to 128 printable ASCII characters without spaces`);
  return v;
}

function bytesUpTo(f: Fields, key: string, max: number): Uint8Array {
  const v = f.bytes(key);
  if (v.length > max) throw malformed(`${f.path}.${key}: expected at most ${max} bytes, got ${v.length}`);
  return v;
}

function readOperation(f: Fields): Operation {
  f.fields('args');
  return {
    name: name(f, 'name', 'an operation name'),
    args: f.raw('args') as CborMap,
    token: f.bytes('token'),
  };
}

export function readCommand(f: Fields): Command {
  const base = {
    t: 'command' as const,
    id: f.bytes('id', COMMAND_ID_BYTES),
    rollout: name(f, 'rollout', 'a rollout id'),
    deadline: f.uint('deadline', 1, MAX_COMMAND_DEADLINE_MS),
  };
  const op = f.oneOf('op', COMMAND_OPS);
  switch (op) {
    case 'stage':
      return { ...base, op, manifest: bytesUpTo(f, 'manifest', MAX_RELEASE_MANIFEST_BYTES) };
    case 'chunk':
      return {
        ...base,
        op,
        command: f.bytes('command', COMMAND_ID_BYTES),
        offset: f.uint('offset'),
        data: bytesUpTo(f, 'data', MAX_CHUNK_BYTES),
      };
    case 'activate':
      return { ...base, op, at: f.uint('at') };
    case 'commit':
    case 'rollback':
      return { ...base, op };
    case 'operate':
      return { ...base, op, operation: readOperation(f.fields('operation')), at: f.uint('at') };
    case 'cancel':
      return { ...base, op, command: f.bytes('command', COMMAND_ID_BYTES) };
  }
}

function opFields(m: Command) {
  switch (m.op) {
    case 'stage':
      return { manifest: m.manifest };
    case 'chunk':
      return { command: m.command, offset: m.offset, data: m.data };
    case 'activate':
      return { at: m.at };
    case 'commit':
    case 'rollback':
      return {};
    case 'operate':
      return {
        operation: { name: m.operation.name, args: m.operation.args, token: m.operation.token },
        at: m.at,
      };
    case 'cancel':
      return { command: m.command };
  }
}

export function writeCommand(m: Command) {
  return { id: m.id, op: m.op, rollout: m.rollout, deadline: m.deadline, ...opFields(m) };
}
