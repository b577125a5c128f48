import { ApiError } from './errors.ts';

/** A whole-number query parameter within bounds, or its default. */
export function intParam(
  q: URLSearchParams,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const raw = q.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ApiError(
      'bad-request',
      `query parameter ${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  return n;
}
