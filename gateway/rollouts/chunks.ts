import { open } from 'node:fs/promises';
import type { Want } from '../../shared/protocol/messages.ts';
import type { ArtifactFiles } from '../releases/artifact-files.ts';
import type { ReleaseManifestRecord } from '../releases/model.ts';
import type { TokenBucket } from './token-bucket.ts';

// Artifact bytes for a device's `want` (PROTOCOL.md §6.2 `chunk`), read from the artifact kept by
// `release import` (DIR/artifacts/<sha256>.tar, copied from the shared store first by a gateway
// that lacks it) within the gateway-wide byte budget. A device asks for one range at a time; a
// newer want from the same device supersedes one still waiting for its budget (its bytes are
// given back), so a device that restarted never gets two streams.

export type ChunkOutcome = 'sent' | 'superseded' | 'refused';

export class ArtifactChunks {
  readonly #latest = new Map<string, symbol>();

  constructor(
    private readonly files: ArtifactFiles,
    private readonly bucket: TokenBucket,
  ) {}

  /**
   * Reads `want` from the artifact once the budget allows and hands it to `send`. A want outside
   * the artifact is refused (with the reason) and nothing is sent: the device's own checks end
   * such a staging.
   */
  async serve(
    device: string,
    artifact: ReleaseManifestRecord['artifact'],
    want: Want,
    send: (offset: number, data: Uint8Array) => void,
  ): Promise<{ outcome: ChunkOutcome; detail?: string }> {
    if (want.offset >= artifact.size)
      return {
        outcome: 'refused',
        detail: `want at ${want.offset} is past the artifact's ${artifact.size} bytes`,
      };
    const length = Math.min(want.length, artifact.size - want.offset);
    const mine = Symbol(device);
    this.#latest.set(device, mine);
    // Known already (every chunk but a release's first): no await, so wants keep their order.
    const known = this.files.known(artifact);
    const located = known ? { ok: true as const, file: known } : await this.files.locate(artifact);
    if (!located.ok) {
      if (this.#latest.get(device) === mine) this.#latest.delete(device);
      return { outcome: 'refused', detail: located.detail };
    }
    await this.bucket.take(length);
    if (this.#latest.get(device) !== mine) {
      this.bucket.refund(length);
      return { outcome: 'superseded' };
    }
    this.#latest.delete(device);
    const data = new Uint8Array(length);
    const fh = await open(located.file, 'r');
    try {
      const { bytesRead } = await fh.read(data, 0, length, want.offset);
      if (bytesRead !== length)
        return {
          outcome: 'refused',
          detail: `${artifact.path} holds fewer bytes than its release says (${artifact.size}): import the bundle again`,
        };
    } finally {
      await fh.close();
    }
    send(want.offset, data);
    return { outcome: 'sent' };
  }
}
