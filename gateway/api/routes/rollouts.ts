import type { CborMap, CborValue } from '../../../shared/cbor/value.ts';
import { isDeviceId } from '../../../shared/protocol/identity.ts';
import { isManifestToken } from '../../../shared/protocol/software-manifest.ts';
import { RolloutError } from '../../rollouts/errors.ts';
import type { Operation, RolloutSpec } from '../../rollouts/model.ts';
import { parseQuota, parseQuotas } from '../../rollouts/quota.ts';
import {
  OPERATOR_ACTIONS,
  type OperateRequest,
  type OperatorAction,
  type StartRequest,
} from '../../rollouts/requests.ts';
import type { ApiContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import { parseLabel } from '../labels.ts';
import type { Router } from '../router.ts';

// Rollouts (docs/rollouts.md): start one on a swarm, watch it, act on it, release an operation
// behind its barrier. With several gateways, any gateway answers: the engine takes a request for
// a rollout another gateway owns to that gateway and returns its answer. Requests take the forms an operator types (`1,50%,100%`, `20%,min=2`,
// `stage=30m`), so that the CLI passes its options through and this is the one parser of them.

const DEFAULT_TIMEOUTS = { stageMs: 30 * 60_000, activateMs: 10 * 60_000, commandMs: 10 * 60_000 };
const MAX_SPAN_MS = 24 * 60 * 60_000;

const bad = (message: string) => new ApiError('bad-rollout', message);

function text(body: Record<string, unknown>, key: string, example: string): string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string')
    throw bad(`"${key}" must be a string such as ${example}, got ${JSON.stringify(v)}`);
  return v.trim();
}

/** `500ms`, `30s`, `10m`, `2h`, or a number of ms. */
export function parseSpan(v: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v);
  const ms = m
    ? Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms']!)
    : Number.NaN;
  if (!(ms >= 1 && ms <= MAX_SPAN_MS))
    throw bad(
      `${what}: ${JSON.stringify(v)} is not a duration from 1 ms to 24 h (such as 500ms, 30s, 10m, 2h)`,
    );
  return ms;
}

function percent(v: string, what: string): number {
  const m = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(v);
  const p = m ? Number(m[1]) : Number.NaN;
  if (!(p >= 0 && p <= 100)) throw bad(`${what}: ${JSON.stringify(v)} is not a share from 0% to 100%`);
  return p;
}

function release(v: unknown): StartRequest['release'] {
  const at = typeof v === 'string' ? v.indexOf('@') : -1;
  const name = at > 0 ? (v as string).slice(0, at) : '';
  const version = at > 0 ? (v as string).slice(at + 1) : '';
  if (!isManifestToken(name) || !isManifestToken(version))
    throw bad(
      `"release" must be NAME@VERSION of an imported release (GET /v1/releases/manifests), got ${JSON.stringify(v)}`,
    );
  return { name, version };
}

function abort(v: string | undefined): RolloutSpec['abort'] {
  if (v === undefined) return { percent: 20, min: 1 };
  const m = /^(\d{1,3}(?:\.\d+)?%?)(?:,min=(\d{1,6}))?$/.exec(v);
  if (!m) throw bad(`"abort": ${JSON.stringify(v)} is not P% or P%,min=N (e.g. 10%,min=5)`);
  return { percent: percent(m[1]!, '"abort"'), min: m[2] === undefined ? 1 : Math.max(1, Number(m[2])) };
}

function barrierOf(v: string | undefined): RolloutSpec['barrier'] {
  if (v === undefined || v === 'all') return { kind: 'all' };
  try {
    return parseQuota(v, '"barrier"');
  } catch (e) {
    throw bad(`${(e as Error).message}, nor "all"`);
  }
}

function required(v: unknown): string[] {
  if (v === undefined) return [];
  const ids = typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string' && isDeviceId(id)))
    throw bad(`"required" must list device ids (24 lowercase hex digits), got ${JSON.stringify(v)}`);
  return [...new Set(ids as string[])];
}

function timeouts(v: unknown): RolloutSpec['timeouts'] {
  if (v === undefined) return DEFAULT_TIMEOUTS;
  const pairs: [string, string][] =
    typeof v === 'string'
      ? v.split(',').map((p) => {
          const eq = p.indexOf('=');
          return [p.slice(0, eq).trim(), p.slice(eq + 1).trim()];
        })
      : typeof v === 'object' && v !== null && !Array.isArray(v)
        ? Object.entries(v).map(([k, x]) => [k, String(x)])
        : [];
  if (pairs.length === 0)
    throw bad(
      `"timeouts" must be stage=…,activate=…,command=… (e.g. stage=30m,activate=5m), got ${JSON.stringify(v)}`,
    );
  const out = { ...DEFAULT_TIMEOUTS };
  for (const [k, x] of pairs) {
    if (k !== 'stage' && k !== 'activate' && k !== 'command')
      throw bad(`"timeouts": unknown step ${JSON.stringify(k)} (stage, activate, command)`);
    out[`${k}Ms`] = parseSpan(x, `"timeouts" ${k}`);
  }
  return out;
}

export function parseStartRequest(body: Record<string, unknown>): StartRequest {
  onlyKeys(
    body,
    ['swarm', 'release', 'waves', 'success', 'abort', 'barrier', 'required', 'timeouts', 'force'],
    'rollout',
  );
  const swarm = text(body, 'swarm', '"line=3"');
  if (swarm === undefined) throw bad('"swarm" is required: the label KEY=VALUE its devices carry');
  parseLabel(swarm, 'bad-selector');
  if (body.force !== undefined && typeof body.force !== 'boolean')
    throw bad(`"force" must be true or false, got ${JSON.stringify(body.force)}`);
  const waves = text(body, 'waves', '"1,50%,100%"') ?? '1,100%';
  let quotas: StartRequest['waves'];
  try {
    quotas = parseQuotas(waves, '"waves"');
  } catch (e) {
    throw bad((e as Error).message);
  }
  const success = text(body, 'success', '"100%"');
  return {
    swarm,
    release: release(body.release),
    waves: quotas,
    successPercent: success === undefined ? 100 : percent(success, '"success"'),
    abort: abort(text(body, 'abort', '"20%,min=2"')),
    barrier: barrierOf(text(body, 'barrier', '"all", "5" or "80%"')),
    required: required(body.required),
    timeouts: timeouts(body.timeouts),
    force: body.force === true,
  };
}

/** JSON → the CBOR map handed to the device's handler (objects are text-keyed maps). */
function cborOf(v: unknown): CborValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
  if (Array.isArray(v)) return v.map(cborOf);
  return new Map(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, cborOf(x)]));
}

/** `at`: Unix ms, an ISO 8601 time, or `+30s` from now. */
export function parseAt(v: unknown, now: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    if (v.startsWith('+')) return now + parseSpan(v.slice(1), '"at"');
    const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : Number.NaN;
    if (!Number.isNaN(t)) return t;
  }
  throw bad(`"at" must be Unix ms, an ISO 8601 time or +SPAN from now (e.g. +30s), got ${JSON.stringify(v)}`);
}

export function parseOperateRequest(body: Record<string, unknown>, now: number): OperateRequest {
  onlyKeys(body, ['name', 'args', 'at'], 'operation');
  if (typeof body.name !== 'string' || !isManifestToken(body.name))
    throw bad(
      `"name" must be the operation's name (1 to 128 printable characters, no spaces), got ${JSON.stringify(body.name)}`,
    );
  const args = body.args ?? {};
  if (typeof args !== 'object' || args === null || Array.isArray(args))
    throw bad(
      `"args" must be a JSON object (handed to the handler as a CBOR map), got ${JSON.stringify(body.args)}`,
    );
  const at = parseAt(body.at, now);
  return { name: body.name, args: cborOf(args) as CborMap, ...(at !== undefined && { at }) };
}

function operationJson(o: Operation) {
  return {
    id: o.id,
    name: o.name,
    at: o.at,
    exp: o.exp,
    state: o.state,
    members: Object.keys(o.told).sort(),
    token: o.token,
  };
}

/** The engine's refusals as API errors, with the same code. */
async function answer<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof RolloutError) throw new ApiError(e.code, e.message);
    throw e;
  }
}

export function rolloutRoutes(router: Router, ctx: ApiContext): void {
  const engine = ctx.gateway.rollouts;
  const viewOr404 = async (id: string) => {
    const v = await engine.view(id);
    if (!v) throw new ApiError('rollout-not-found', `no rollout ${JSON.stringify(id)}: see GET /v1/rollouts`);
    return v;
  };

  router.on('GET', '/v1/rollouts', async () => ({ status: 200, json: { rollouts: await engine.list() } }));

  router.on('POST', '/v1/rollouts', async ({ req }) => {
    const request = parseStartRequest(await readJson(req));
    const r = await answer(() => engine.start(request));
    return { status: 201, json: { rollout: await viewOr404(r.spec.id) } };
  });

  router.on('GET', '/v1/rollouts/:id', async ({ params }) => ({
    status: 200,
    json: { rollout: await viewOr404(params.id!) },
  }));

  router.on('POST', '/v1/rollouts/:id/operations', async ({ req, params }) => {
    const request = parseOperateRequest(await readJson(req), Date.now());
    const op = await answer(() => engine.operate(params.id!, request));
    return { status: 201, json: { operation: operationJson(op) } };
  });

  router.on('POST', '/v1/rollouts/:id/:action', async ({ params }) => {
    const action = params.action as OperatorAction;
    if (!OPERATOR_ACTIONS.includes(action))
      throw new ApiError(
        'not-found',
        `no action ${JSON.stringify(params.action)}: one of ${OPERATOR_ACTIONS.join(', ')}`,
      );
    await answer(() => engine.act(params.id!, action));
    return { status: 200, json: { rollout: await viewOr404(params.id!) } };
  });
}
