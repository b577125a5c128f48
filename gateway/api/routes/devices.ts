import { toHex } from '../../../shared/tpm/index.ts';
import { mcuViews } from '../../mcus/view.ts';
import { type DeviceRecord, POSTURES, type Posture } from '../../model.ts';
import { type ApiContext, heardOf, isConnected } from '../context.ts';
import { ApiError } from '../errors.ts';
import { onlyKeys, readJson } from '../http.ts';
import { checkLabelKey, checkLabelValue, MAX_LABELS } from '../labels.ts';
import { intParam } from '../query.ts';
import type { Router } from '../router.ts';
import { labelMatcher } from '../selector.ts';
import { type DeviceDetailView, deviceView, eventView, roundView } from '../views.ts';

/** Rounds looked through for the newest appraised one, whose MCU results the device view shows. */
const MCU_LOOKBACK = 5;

export async function deviceOr404(ctx: ApiContext, id: string): Promise<DeviceRecord> {
  await heardOf(ctx, [id]);
  const d = ctx.gateway.fleet.get(id);
  if (!d)
    throw new ApiError(
      'device-not-found',
      `no device ${JSON.stringify(id)}: ids are 24 lowercase hex digits, as \`vigil-gateway devices\` lists them`,
    );
  return d;
}

export function deviceRoutes(router: Router, ctx: ApiContext): void {
  router.on('GET', '/v1/devices', async ({ query }) => {
    const label = query.get('label');
    const posture = query.get('posture');
    if (posture !== null && !POSTURES.includes(posture as Posture))
      throw new ApiError(
        'bad-request',
        `posture ${JSON.stringify(posture)}: expected one of ${POSTURES.join(', ')}`,
      );
    const byLabel = label === null ? () => true : labelMatcher(label);
    const latest = await ctx.gateway.store.latestRounds();
    const devices = [...ctx.gateway.fleet.all()]
      .filter((d) => byLabel(d) && (posture === null || d.posture === posture))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((d) => deviceView(d, isConnected(ctx, d.id), latest.get(d.id)));
    return { status: 200, json: { devices } };
  });

  router.on('GET', '/v1/devices/:id', async ({ params, query }) => {
    const d = await deviceOr404(ctx, params.id!);
    const rounds = intParam(query, 'rounds', 0, 500, 20);
    const events = intParam(query, 'events', 0, 500, 20);
    // A few rounds at least: the MCUs are shown from the newest appraised one, which may be
    // behind a round still pending.
    const [recent, history] = await Promise.all([
      ctx.gateway.store.recentRounds(d.id, Math.max(rounds, MCU_LOOKBACK)),
      ctx.gateway.store.postureEvents(d.id, events),
    ]);
    const json: DeviceDetailView = {
      device: {
        ...deviceView(d, isConnected(ctx, d.id), recent[0]),
        connections: ctx.gateway.connections.of(d.id).length,
        software: (d.swLog?.running ?? []).map((s) => ({
          name: s.name,
          version: s.version,
          digest: toHex(s.digest),
        })),
      },
      rounds: recent.slice(0, rounds).map(roundView),
      events: history.map(eventView),
      mcus: mcuViews(d.id, recent),
    };
    return { status: 200, json };
  });

  // {set: {K: V}, remove: [K]}: one request, applied together (removals first).
  router.on('PATCH', '/v1/devices/:id/labels', async ({ req, params }) => {
    const d = await deviceOr404(ctx, params.id!);
    const body = await readJson(req);
    onlyKeys(body, ['set', 'remove'], 'labels');
    const set = body.set ?? {};
    const remove = body.remove ?? [];
    if (typeof set !== 'object' || set === null || Array.isArray(set))
      throw new ApiError('bad-label', '"set" must be an object of label keys to string values');
    if (!Array.isArray(remove) || remove.some((k) => typeof k !== 'string'))
      throw new ApiError('bad-label', '"remove" must be an array of label keys');
    const labels: Record<string, string> = { ...d.labels };
    for (const k of remove as string[]) delete labels[checkLabelKey(k)];
    for (const [k, v] of Object.entries(set as Record<string, unknown>)) {
      checkLabelKey(k);
      if (typeof v !== 'string') throw new ApiError('bad-label', `label ${k}: the value must be a string`);
      labels[k] = checkLabelValue(k, v);
    }
    if (Object.keys(labels).length > MAX_LABELS)
      throw new ApiError('bad-label', `a device has at most ${MAX_LABELS} labels; remove some first`);
    const saved = ctx.gateway.fleet.save({ ...d, labels });
    // Back ends filter posture events by label: they hear of the change.
    ctx.gateway.fleet.announce(d.id);
    ctx.gateway.log.info({ device: d.id, labels }, 'labels changed');
    const [last] = await ctx.gateway.store.recentRounds(d.id, 1);
    return { status: 200, json: { device: deviceView(saved, isConnected(ctx, d.id), last) } };
  });
}
