import type { GatewayEvent } from '../events.ts';
import type { ForwardedReport, PeerAnswer, PeerAsk } from '../rollouts/peers.ts';

// What gateways tell each other on the control bus (JSON, so `redis-cli subscribe` shows it).
// Each says something that is already in PostgreSQL, or soft state that is sent again: a lost
// message delays, it never loses anything (docs/scale.md).

export type BusMessage =
  /** These device rows were committed: read them again. */
  | { readonly t: 'devices'; readonly from: string; readonly ids: readonly string[] }
  /** The allowlist or the releases changed: rebuild the runtime policy. */
  | { readonly t: 'policy'; readonly from: string }
  /** Live-view events of the sender's devices, rounds and batches. */
  | { readonly t: 'events'; readonly from: string; readonly events: readonly GatewayEvent[] }
  /** Rounds of this batch were asked of the fleet: take those of the devices you hold. */
  | { readonly t: 'requested'; readonly from: string; readonly batch: string }
  /** To the asker: the sender took what it could of this batch. */
  | { readonly t: 'answered'; readonly from: string; readonly batch: string }
  /** To a device's previous holder: a newer connection of it attested on the sender. */
  | { readonly t: 'retire'; readonly from: string; readonly device: string }
  /** The app/ filters the sender's clients subscribe to (sent on change and periodically). */
  | { readonly t: 'interest'; readonly from: string; readonly filters: readonly string[] }
  /** To a rollout's owner: an operator asked the sender to act on it (answered with `rollout-answer`). */
  | { readonly t: 'rollout-ask'; readonly from: string; readonly id: string; readonly ask: PeerAsk }
  /** To the asker: the owner's answer to the request `id`. */
  | { readonly t: 'rollout-answer'; readonly from: string; readonly id: string; readonly answer: PeerAnswer }
  /** To a rollout's owner: a member held by the sender reported on a command. */
  | { readonly t: 'rollout-report'; readonly from: string; readonly report: ForwardedReport }
  /** From a rollout's owner: send its commands in flight again to the members you hold. */
  | { readonly t: 'rollout-resend'; readonly from: string; readonly rollout: string }
  /** To a rollout's owner: the attested connection of this member ended on the sender. */
  | { readonly t: 'rollout-left'; readonly from: string; readonly rollout: string; readonly device: string };

export type BusMessageType = BusMessage['t'];

const isString = (v: unknown): v is string => typeof v === 'string';
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isAsk = (v: unknown): boolean =>
  isObject(v) &&
  isString(v.rollout) &&
  ((v.kind === 'act' && isString(v.action)) ||
    (v.kind === 'operate' && isString(v.name) && isString(v.args)));

/** The message in `text`, or why it is not one (a newer gateway, a stray publisher). */
export function parseBusMessage(text: string): BusMessage | { readonly invalid: string } {
  let m: Record<string, unknown>;
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return { invalid: 'not a JSON object' };
    m = v as Record<string, unknown>;
  } catch {
    return { invalid: 'not JSON' };
  }
  if (!isString(m.from)) return { invalid: '"from" is not a gateway id' };
  switch (m.t) {
    case 'devices':
      return isStringArray(m.ids) ? (m as BusMessage) : { invalid: '"ids" is not a list of device ids' };
    case 'policy':
      return m as BusMessage;
    case 'events':
      return Array.isArray(m.events) &&
        m.events.every((e) => typeof e === 'object' && e !== null && 'kind' in e)
        ? (m as BusMessage)
        : { invalid: '"events" is not a list of events' };
    case 'requested':
    case 'answered':
      return isString(m.batch) ? (m as BusMessage) : { invalid: '"batch" is not a batch id' };
    case 'retire':
      return isString(m.device) ? (m as BusMessage) : { invalid: '"device" is not a device id' };
    case 'interest':
      return isStringArray(m.filters) ? (m as BusMessage) : { invalid: '"filters" is not a list of filters' };
    case 'rollout-ask':
      return isString(m.id) && isAsk(m.ask)
        ? (m as BusMessage)
        : { invalid: '"id" or "ask" is not a rollout request' };
    case 'rollout-answer':
      return isString(m.id) && isObject(m.answer) && typeof m.answer.ok === 'boolean'
        ? (m as BusMessage)
        : { invalid: '"id" or "answer" is not an answer to a rollout request' };
    case 'rollout-report':
      return isObject(m.report) &&
        isString(m.report.rollout) &&
        isString(m.report.device) &&
        isString(m.report.command) &&
        isString(m.report.state)
        ? (m as BusMessage)
        : { invalid: '"report" is not a report of a rollout member' };
    case 'rollout-resend':
      return isString(m.rollout) ? (m as BusMessage) : { invalid: '"rollout" is not a rollout id' };
    case 'rollout-left':
      return isString(m.rollout) && isString(m.device)
        ? (m as BusMessage)
        : { invalid: '"rollout" or "device" is not an id' };
    default:
      return { invalid: `unknown message type ${JSON.stringify(m.t)}` };
  }
}
