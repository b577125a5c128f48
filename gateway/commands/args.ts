import { type ParseArgsConfig, parseArgs } from 'node:util';
import { type ApiClient, apiClient, gatewayDir } from './client.ts';

// Argument handling shared by the operator commands: every one takes --dir (the gateway
// directory, for the API address and the token) and --api (an explicit API URL).

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const TARGET_OPTIONS = {
  dir: { type: 'string' },
  api: { type: 'string' },
} as const;

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(args: string[], options: O, positionals = true) {
  try {
    return parseArgs({ args, options, allowPositionals: positionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function client(values: { dir?: string | undefined; api?: string | undefined }): ApiClient {
  return apiClient({ dir: gatewayDir(values.dir), api: values.api });
}

/** "30", "30s", "500ms", "2m" → ms. */
export function duration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} must be a duration such as 30s, 500ms or 2m, got "${text}"`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}
