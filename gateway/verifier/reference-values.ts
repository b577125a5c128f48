import { toHex } from '../../shared/tpm/index.ts';
import type { SoftwareReference } from '../policy/policy.ts';

/**
 * What the verifier compares measurements against: allowed values per PCR and allowed software
 * releases. Built once per policy or release change, so each appraisal is a few set lookups.
 */
export class ReferenceValues {
  private readonly software: ReadonlySet<string>;
  private readonly pcrs: ReadonlyMap<number, ReadonlySet<string>>;

  constructor(pcrs: ReadonlyMap<number, readonly string[]>, software: readonly SoftwareReference[]) {
    this.pcrs = new Map([...pcrs].map(([i, values]) => [i, new Set(values.map((v) => v.toLowerCase()))]));
    this.software = new Set(software.map((s) => key(s.name, s.version, s.digest.toLowerCase())));
  }

  allowsSoftware(name: string, version: string, digest: Uint8Array): boolean {
    return this.software.has(key(name, version, toHex(digest)));
  }

  /** undefined when the PCR has no reference values: its value is then reported, not judged. */
  allowsPcr(index: number, value: Uint8Array): boolean | undefined {
    const allowed = this.pcrs.get(index);
    return allowed === undefined ? undefined : allowed.has(toHex(value));
  }
}

function key(name: string, version: string, digest: string): string {
  return `${name}\u0000${version}\u0000${digest}`;
}
