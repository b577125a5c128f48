import { decodeCbor } from '../../shared/cbor/decode.ts';
import type { CborMap } from '../../shared/cbor/value.ts';
import { MAX_COMMAND_DEADLINE_MS } from '../../shared/protocol/command.ts';
import type { Command } from '../../shared/protocol/messages.ts';
import { fromHex } from '../../shared/tpm/bytes.ts';
import type { InFlight, Rollout } from './model.ts';

// A command of the rollout as it goes on the wire (PROTOCOL.md §6.2), built from what the rollout
// state keeps, so the first send and a resend after a reconnection or a restart of the gateway are
// the same command with the same id. `deadline` is what is left of the command's time.

/** ms left until `deadlineAt`, within what a command may carry. */
export function remaining(deadlineAt: number, now: number): number {
  return Math.min(MAX_COMMAND_DEADLINE_MS, Math.max(1, deadlineAt - now));
}

export function wireCommand(r: Rollout, id: string, f: InFlight, manifest: Uint8Array, now: number): Command {
  const base = {
    t: 'command' as const,
    id: fromHex(id),
    rollout: r.spec.id,
    deadline: remaining(f.deadlineAt, now),
  };
  const c = f.command;
  switch (c.op) {
    case 'stage':
      return { ...base, op: 'stage', manifest };
    case 'activate':
      return { ...base, op: 'activate', at: c.at };
    case 'commit':
    case 'rollback':
      return { ...base, op: c.op };
    case 'cancel':
      return { ...base, op: 'cancel', command: fromHex(c.command) };
    case 'operate': {
      const op = r.operations.find((o) => o.id === c.operation);
      if (!op)
        throw new Error(
          `rollout ${r.spec.id}: operate ${id} names operation ${c.operation}, which it does not hold`,
        );
      return {
        ...base,
        op: 'operate',
        operation: { name: op.name, args: decodeCbor(fromHex(op.args)) as CborMap, token: fromHex(op.token) },
        at: c.at,
      };
    }
  }
}
