// Operator API errors: `{error: {code, message}}` with an HTTP status. Codes are stable strings
// that scripts may switch on; messages are for people and say what was wrong and what to do.

export const API_ERRORS = {
  'bad-request': 400,
  'bad-selector': 400,
  'bad-label': 400,
  'bad-ek': 400,
  'bad-release': 400,
  'bad-mcu': 400,
  'bad-rollout': 400,
  unauthorized: 401,
  forbidden: 403,
  'csrf-refused': 403,
  'not-found': 404,
  'device-not-found': 404,
  'batch-not-found': 404,
  'release-not-found': 404,
  'round-not-found': 404,
  'rollout-not-found': 404,
  'ear-not-found': 404,
  'evidence-not-found': 404,
  'not-admitted': 404,
  'mcu-not-admitted': 404,
  'no-match': 404,
  'method-not-allowed': 405,
  'backup-refused': 409,
  'rollout-conflict': 409,
  'rollback-refused': 409,
  'rollout-refused': 409,
  'barrier-not-held': 409,
  'body-too-large': 413,
  internal: 500,
  'too-many-streams': 503,
  'owner-unreachable': 503,
  'backup-failed': 500,
  'backup-unsupported': 501,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.status = API_ERRORS[code];
  }

  toJSON(): { error: { code: ApiErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}
