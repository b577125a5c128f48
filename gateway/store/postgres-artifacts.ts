import { open } from 'node:fs/promises';
import type pg from 'pg';
import type { ArtifactStore, StoredArtifact } from '../releases/artifact-files.ts';

// Release artifacts in the shared store: `release import` keeps the artifact there too, in chunks
// of 1 MiB, so that any gateway can serve a release whichever gateway's host imported it. One
// transaction per artifact: the artifact row exists only with all its chunks. Read back one chunk
// per query, so a gateway copying a large artifact never holds more than a chunk of it.

const CHUNK = 1 << 20;

export class PgArtifacts implements ArtifactStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly transaction: <T>(fn: (client: pg.PoolClient) => Promise<T>) => Promise<T>,
  ) {}

  async putArtifact(sha256: string, size: number, file: string): Promise<void> {
    const fh = await open(file, 'r');
    try {
      await this.transaction(async (client) => {
        const { rows } = await client.query(
          `INSERT INTO artifacts (sha256, size, chunk_size, stored_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (sha256) DO NOTHING RETURNING sha256`,
          [sha256, size, CHUNK, Date.now()],
        );
        if (rows.length === 0) return; // content-addressed: stored already
        const buf = Buffer.alloc(CHUNK);
        for (let seq = 0, offset = 0; offset < size; seq++) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - offset), offset);
          if (bytesRead === 0)
            throw new Error(`${file} ends at ${offset} bytes, before the artifact's ${size}: import again`);
          await client.query('INSERT INTO artifact_chunks (sha256, seq, data) VALUES ($1, $2, $3)', [
            sha256,
            seq,
            buf.subarray(0, bytesRead),
          ]);
          offset += bytesRead;
        }
      });
    } finally {
      await fh.close();
    }
  }

  async readArtifact(sha256: string): Promise<StoredArtifact | undefined> {
    const { rows } = await this.pool.query<{ size: number }>('SELECT size FROM artifacts WHERE sha256 = $1', [
      sha256,
    ]);
    if (rows[0] === undefined) return undefined;
    const pool = this.pool;
    return {
      size: rows[0].size,
      async *chunks() {
        for (let seq = 0; ; seq++) {
          const r = await pool.query<{ data: Buffer }>(
            'SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2',
            [sha256, seq],
          );
          if (r.rows[0] === undefined) return;
          yield new Uint8Array(r.rows[0].data);
        }
      },
    };
  }
}
