import { MAX_MODEL_LENGTH } from '../../shared/mcu/certificate.ts';
import { isSlotName } from '../../shared/mcu/claims.ts';
import type { Field } from '../policy/json-fields.ts';
import { MCU_FAILURE_SCOPES, type McuFailureScope } from './model.ts';

// The `mcus` section of policy.json (docs/policy.md): the reference firmware of each MCU model,
// whether a failing MCU contraindicates only its own submodule or the whole device (by default,
// per model, per slot), and which slots devices are expected to carry, chosen by their labels.

export interface McuExpectation {
  /** The devices it applies to: those carrying every one of these labels ({} is every device). */
  readonly labels: Readonly<Record<string, string>>;
  /** Slots each of them must report; one missing is `mcu-absent`. */
  readonly slots: readonly string[];
}

export interface McuPolicySettings {
  /** MCU model (as its certificate names it) → allowed firmware digests, lowercase hex SHA-256. */
  readonly firmware: Readonly<Record<string, readonly string[]>>;
  /** What a failing MCU does to its device, unless its slot or its model says otherwise. */
  readonly onFailure: McuFailureScope;
  /** Per slot; the most specific setting wins: slot, then model, then `onFailure`. */
  readonly slots: Readonly<Record<string, { readonly onFailure: McuFailureScope }>>;
  readonly models: Readonly<Record<string, { readonly onFailure: McuFailureScope }>>;
  readonly expect: readonly McuExpectation[];
}

export function defaultMcuPolicy(): McuPolicySettings {
  return { firmware: {}, onFailure: 'submodule', slots: {}, models: {}, expect: [] };
}

const SLOT_RULE = '1 to 32 characters of [a-z0-9-], starting with a letter or digit';

function checkModel(key: string, f: Field): string {
  if (key.length === 0 || key.length > MAX_MODEL_LENGTH)
    throw f.error(
      `expected a model name of 1 to ${MAX_MODEL_LENGTH} characters as the key, as the MCU's certificate names it`,
    );
  return key;
}

function checkSlotKey(key: string, f: Field): string {
  if (!isSlotName(key)) throw f.error(`expected a slot name (${SLOT_RULE}) as the key`);
  return key;
}

function checkSlot(f: Field): string {
  const slot = f.text();
  if (!isSlotName(slot)) f.fail(`a slot name (${SLOT_RULE})`);
  return slot;
}

function scopes(
  f: Field | undefined,
  what: string,
  checkKey: (key: string, f: Field) => string,
): Record<string, { onFailure: McuFailureScope }> {
  const out: Record<string, { onFailure: McuFailureScope }> = {};
  for (const [key, e] of f?.entries(`an object mapping ${what} to {"onFailure": ...}`) ?? []) {
    const s = e.object(['onFailure']);
    const scope = s.get('onFailure') ?? e.child('onFailure', undefined);
    out[checkKey(key, e)] = { onFailure: scope.oneOf(MCU_FAILURE_SCOPES) };
  }
  return out;
}

function parseExpectation(e: Field): McuExpectation {
  const m = e.object(['labels', 'slots']);
  const labels: Record<string, string> = {};
  for (const [k, v] of m.get('labels')?.entries('an object of label keys to values') ?? [])
    labels[k] = v.text();
  const slotsField = m.get('slots') ?? e.child('slots', undefined);
  const slots = slotsField.array(`a list of slot names (${SLOT_RULE})`).map(checkSlot);
  if (slots.length === 0) slotsField.fail('at least one slot (an expectation of none checks nothing)');
  return { labels, slots: [...new Set(slots)] };
}

export function parseMcuPolicy(f: Field | undefined): McuPolicySettings {
  const d = defaultMcuPolicy();
  if (!f) return d;
  const m = f.object(['firmware', 'onFailure', 'slots', 'models', 'expect']);
  const firmware: Record<string, readonly string[]> = {};
  for (const [model, e] of m
    .get('firmware')
    ?.entries('an object mapping MCU models to lists of firmware digests') ?? []) {
    const digests = e.array('a list of firmware digests (SHA-256 of the image, 64 hex digits)');
    if (digests.length === 0) e.fail('at least one digest (an empty list refuses every MCU of this model)');
    firmware[checkModel(model, e)] = digests.map((d) => d.sha256Hex());
  }
  return {
    firmware,
    onFailure: m.get('onFailure')?.oneOf(MCU_FAILURE_SCOPES) ?? d.onFailure,
    slots: scopes(m.get('slots'), 'slot names', checkSlotKey),
    models: scopes(m.get('models'), 'MCU models', checkModel),
    expect: m.get('expect')?.array('a list of {labels, slots}').map(parseExpectation) ?? d.expect,
  };
}
