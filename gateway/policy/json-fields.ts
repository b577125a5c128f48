// Strict reading of a JSON document with errors an operator can act on: each names the file, the
// field's path, what was found and what is allowed, e.g.
//   policy.json: rounds.periodicMs: expected a whole number of ms from 1000 to 86400000, got "5m"

export class PolicyError extends Error {
  constructor(
    /** The file (or other origin) of the document. */
    readonly source: string,
    /** Path of the offending field, e.g. `rounds.periodicMs` or `pcrs[2]`; '' for the whole document. */
    readonly field: string,
    readonly detail: string,
  ) {
    super(field === '' ? `${source}: ${detail}` : `${source}: ${field}: ${detail}`);
    this.name = 'PolicyError';
  }
}

/** Keys with this name are the document's comments, ignored wherever they appear. */
export const COMMENT_KEY = '$comment';

/** A value of a JSON document for an error message: JSON, cut short. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const s = JSON.stringify(value);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

/** One value of the document and where it is. */
export class Field {
  constructor(
    readonly source: string,
    readonly path: string,
    readonly value: unknown,
  ) {}

  child(key: string, value: unknown): Field {
    return new Field(this.source, this.path === '' ? key : `${this.path}.${key}`, value);
  }

  error(detail: string): PolicyError {
    return new PolicyError(this.source, this.path, detail);
  }

  /** Throws "expected <expected>, got <value>". */
  fail(expected: string): never {
    throw this.error(`expected ${expected}, got ${show(this.value)}`);
  }

  /** The members of an object; any key outside `allowed` is an error naming the allowed ones. */
  object(allowed: readonly string[]): Map<string, Field> {
    const v = this.value;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.fail(`an object${allowed.length > 0 ? ` with keys ${allowed.join(', ')}` : ''}`);
    }
    const out = new Map<string, Field>();
    for (const [key, value] of Object.entries(v)) {
      if (key === COMMENT_KEY) continue;
      const f = this.child(key, value);
      if (!allowed.includes(key)) throw f.error(`unknown key (allowed here: ${allowed.join(', ')})`);
      out.set(key, f);
    }
    return out;
  }

  /** The members of an object whose keys are data (not a fixed set). */
  entries(expected: string): [key: string, field: Field][] {
    const v = this.value;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(expected);
    return Object.entries(v)
      .filter(([key]) => key !== COMMENT_KEY)
      .map(([key, value]) => [key, this.child(key, value)]);
  }

  array(expected: string): Field[] {
    if (!Array.isArray(this.value)) this.fail(expected);
    return this.value.map((v, i) => new Field(this.source, `${this.path}[${i}]`, v));
  }

  integer(min: number, max: number, unit = ''): number {
    const v = this.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.fail(`a whole number${unit === '' ? '' : ` of ${unit}`} from ${min} to ${max}`);
    }
    return v;
  }

  number(min: number, max: number): number {
    const v = this.value;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
      this.fail(`a number from ${min} to ${max}`);
    return v;
  }

  boolean(): boolean {
    if (typeof this.value !== 'boolean') this.fail('true or false');
    return this.value;
  }

  text(): string {
    if (typeof this.value !== 'string' || this.value.trim() === '') this.fail('a non-empty string');
    return this.value;
  }

  oneOf<const T extends string>(options: readonly T[]): T {
    const v = this.value;
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
      this.fail(`one of ${options.map((o) => JSON.stringify(o)).join(', ')}`);
    }
    return v as T;
  }

  /** A SHA-256 digest in hex, returned lowercase. */
  sha256Hex(): string {
    const v = this.value;
    if (typeof v !== 'string' || !/^[0-9a-fA-F]{64}$/.test(v)) this.fail('a SHA-256 digest as 64 hex digits');
    return v.toLowerCase();
  }
}
