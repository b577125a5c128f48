import type { ResultCode } from './codes.ts';

/**
 * The only error the protocol layer throws. `code` is a vigil/1 result code; `detail` is for a
 * human and names the offending key, what was expected and what came.
 */
export class ProtocolError extends Error {
  constructor(
    readonly code: ResultCode,
    readonly detail: string,
  ) {
    super(`${code}: ${detail}`);
    this.name = 'ProtocolError';
  }
}

export function malformed(detail: string): ProtocolError {
  return new ProtocolError('malformed', detail);
}
