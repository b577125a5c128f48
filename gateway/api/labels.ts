import { show } from '../policy/json-fields.ts';
import { ApiError } from './errors.ts';

// Device labels: short keys and values, chosen so that `K=V` is unambiguous on a command line and
// in a query string (no `=`, `,`, spaces or quotes), like Kubernetes' label syntax.

const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const VALUE = /^[A-Za-z0-9_.:@/+-]{1,128}$/;
export const MAX_LABELS = 32;

export function checkLabelKey(key: string): string {
  if (!KEY.test(key))
    throw new ApiError(
      'bad-label',
      `label key ${show(key)}: expected 1 to 63 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit`,
    );
  return key;
}

export function checkLabelValue(key: string, value: string): string {
  if (!VALUE.test(value))
    throw new ApiError(
      'bad-label',
      `label ${key}: value ${show(value)} must be 1 to 128 characters from A-Z a-z 0-9 _ . : @ / + -`,
    );
  return value;
}

/** `K=V` as typed by an operator. */
export function parseLabel(text: string, code: 'bad-label' | 'bad-selector' = 'bad-label'): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ApiError(code, `label ${show(text)}: expected KEY=VALUE, for example swarm=kitchen`);
  try {
    const key = checkLabelKey(text.slice(0, eq));
    return [key, checkLabelValue(key, text.slice(eq + 1))];
  } catch (e) {
    if (e instanceof ApiError && code !== e.code) throw new ApiError(code, e.message);
    throw e;
  }
}
