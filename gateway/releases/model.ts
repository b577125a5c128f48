// Imported releases as the gateway keeps them (gateway/releases/import.ts): the signed manifest
// exactly as the release key signed it, and where its artifact lies under the gateway directory.
// The rollout engine serves both to devices; the reference value `(name, version, digest)` is
// registered beside it (model.ts `Release`), so appraisal never needs this record.

export interface ReleaseManifestRecord {
  readonly name: string;
  readonly version: string;
  readonly seq: number;
  /** Hex software manifest digest of the installed tree. */
  readonly digest: string;
  /** Hex key id of the release key that signed it. */
  readonly kid: string;
  /** The release manifest, a COSE_Sign1, byte for byte as signed. */
  readonly manifest: Uint8Array;
  readonly artifact: {
    /** Hex SHA-256 of the artifact. */
    readonly sha256: string;
    readonly size: number;
    /** Relative to the gateway directory: `artifacts/<sha256>.tar`. */
    readonly path: string;
  };
  readonly importedAt: number;
}
