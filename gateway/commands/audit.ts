import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { EvidenceView } from '../api/views.ts';
import { type AuditInput, auditFiles } from '../audit/bundle.ts';
import { client, parse, TARGET_OPTIONS, UsageError } from './args.ts';
import { CommandError } from './client.ts';

// `vigil-gateway audit ROUND --out DIR`: a stored round exported for a third party to re-verify
// with standard tools (gateway/audit/). The round comes from the running gateway's API.

const ROUND_ID = /^[0-9a-f]{32}$/;

export async function audit(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...TARGET_OPTIONS, out: { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('audit takes one round id');
  const id = positionals[0]!.toLowerCase();
  if (!ROUND_ID.test(id))
    throw new UsageError(
      `"${positionals[0]}" is not a round id: 32 hex digits, as \`vigil-gateway show DEVICE\` lists them`,
    );
  if (!values.out) throw new UsageError('audit needs --out DIR, a new or empty directory for the export');
  const out = resolve(values.out);
  const existing = (() => {
    try {
      return readdirSync(out);
    } catch {
      return [];
    }
  })();
  if (existing.length > 0)
    throw new UsageError(`--out ${out} is not empty; give a new or empty directory, so exports never mix`);

  const api = client(values);
  const evidence = await api.request<EvidenceView>('GET', `/v1/rounds/${id}/evidence`).catch((e: unknown) => {
    if (e instanceof CommandError && e.code === 'round-not-found')
      throw new CommandError(
        `round ${id} is not in the store: this gateway never issued it, or retention pruned it (settled rounds are kept for policy.json retention.roundsDays, 7 days by default)`,
        e.code,
      );
    if (e instanceof CommandError && e.code === 'evidence-not-found')
      throw new CommandError(`${e.message}: there is nothing to audit`, e.code);
    throw e;
  });
  const [ear, earKey] = await Promise.all([
    api.request<AuditInput['ear']>('GET', `/v1/rounds/${id}/ear`),
    api.request<AuditInput['earKey']>('GET', '/v1/ear-key'),
  ]);
  const files = auditFiles({ evidence, ear, earKey });
  mkdirSync(out, { recursive: true });
  for (const [name, content] of files) writeFileSync(join(out, name), content);
  chmodSync(join(out, 'check.sh'), 0o755);
  process.stdout.write(
    `round ${id} of device ${evidence.device} (${evidence.round.status ?? evidence.round.state}) exported to ${out}\n` +
      `re-verify it: bash ${join(out, 'check.sh')}   (what each check shows: ${join(out, 'README')})\n`,
  );
  return 0;
}
