import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { json } from './output.ts';

// `vigil-gateway operate ROLLOUT NAME`: release an operation to a rollout's converged swarm. The
// gateway sends it only while the barrier holds; when it does not, the API refuses with who is
// missing and this exits 1 (the message says it).

interface Released {
  readonly operation: {
    readonly id: string;
    readonly name: string;
    readonly at: number;
    readonly exp: number;
    readonly state: string;
    readonly members: readonly string[];
    readonly token: string;
  };
}

export async function operate(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...TARGET_OPTIONS,
    args: { type: 'string' },
    at: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 2) throw new UsageError('operate takes a rollout id and an operation name');
  let opArgs: unknown;
  if (values.args !== undefined) {
    try {
      opArgs = JSON.parse(values.args);
    } catch (e) {
      throw new UsageError(`--args must be a JSON object, e.g. '{"recipe": "b"}': ${(e as Error).message}`);
    }
  }
  const [id, name] = positionals as [string, string];
  const { operation: o } = await client(values).request<Released>(
    'POST',
    `/v1/rollouts/${encodeURIComponent(id)}/operations`,
    {
      name,
      ...(opArgs !== undefined && { args: opArgs }),
      ...(values.at !== undefined && { at: values.at }),
    },
  );
  process.stdout.write(
    values.json
      ? json(o)
      : `operation ${o.id}: ${o.name} released to ${o.members.length} member${o.members.length === 1 ? '' : 's'} for ${new Date(o.at).toISOString()}\ntoken ${o.token}\n`,
  );
  return 0;
}
