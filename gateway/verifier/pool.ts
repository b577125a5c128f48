import type { KeyObject } from 'node:crypto';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { COSE_ALG, signToBeSigned } from '../../shared/cose/sign1.ts';
import { runSignatureCheck, type SignatureCheck } from '../../shared/tpm/signature.ts';

// The two ECDSA operations of a round, the AK's quote signature checked and the EAR signed, are
// most of what the verifier computes; on a machine with more than one core they run in worker
// threads while the main thread serves connections. Jobs queued during one turn of the event loop
// go to a worker as one message, so what a job costs the main thread is a few microseconds, not a
// message each. Without threads (`threads: 0`) every job runs at once, synchronously: the same
// callbacks, called before the call returns, so callers have one code path.
//
// Workers start with the first job. A worker that fails has its jobs run here and is replaced,
// unless it failed before it ever answered (it would fail again: the pool then works here);
// closing runs what is still queued, so no round that was appraised goes unanswered at shutdown.

export type CryptoJob =
  | { readonly op: 'verify'; readonly check: SignatureCheck }
  | { readonly op: 'sign'; readonly data: Uint8Array };

/** What a worker is started with. */
export interface CryptoPoolData {
  readonly signingKey: KeyObject;
}

export interface CryptoWork {
  /** Calls `done` with whether the signature verifies. */
  verify(check: SignatureCheck, done: (valid: boolean) => void): void;
  /** Calls `done` with the ES256 signature (IEEE P1363) of `data` by the EAR key. */
  sign(data: Uint8Array, done: (signature: Uint8Array) => void): void;
  close(): Promise<void>;
}

type Done = (result: boolean | Uint8Array) => void;

interface Lane {
  readonly worker: Worker;
  answered: boolean;
  /** Batches sent and not answered, oldest first. */
  readonly inFlight: { jobs: CryptoJob[]; done: Done[] }[];
  outstanding: number;
}

/** Jobs sent at most per message: a batch is answered as a whole. */
const MAX_BATCH = 256;

export class CryptoPool implements CryptoWork {
  readonly #lanes: Lane[] = [];
  #queue: CryptoJob[] = [];
  #waiting: Done[] = [];
  #scheduled = false;
  #closed = false;

  #started = false;

  constructor(
    private readonly signingKey: KeyObject,
    readonly threads: number,
  ) {}

  /** Workers that have answered at least once (the others may have failed to start). */
  get answering(): number {
    return this.#lanes.filter((l) => l.answered).length;
  }

  verify(check: SignatureCheck, done: (valid: boolean) => void): void {
    this.#submit({ op: 'verify', check }, done as Done);
  }

  sign(data: Uint8Array, done: (signature: Uint8Array) => void): void {
    this.#submit({ op: 'sign', data }, done as Done);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#runHere(this.#queue.splice(0), this.#waiting.splice(0));
    for (const lane of this.#lanes.splice(0)) {
      this.#retire(lane);
      await lane.worker.terminate();
    }
  }

  #submit(job: CryptoJob, done: Done): void {
    if (!this.#started) {
      this.#started = true;
      for (let i = 0; i < this.threads; i++) this.#lanes.push(this.#lane());
    }
    if (this.#lanes.length === 0 || this.#closed) {
      done(this.#run(job));
      return;
    }
    this.#queue.push(job);
    this.#waiting.push(done);
    if (this.#queue.length >= MAX_BATCH) this.#dispatch();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#dispatch());
    }
  }

  #dispatch(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 || this.#closed) return;
    const jobs = this.#queue;
    const done = this.#waiting;
    this.#queue = [];
    this.#waiting = [];
    let lane = this.#lanes[0];
    if (!lane) {
      this.#runHere(jobs, done);
      return;
    }
    for (const l of this.#lanes) if (l.outstanding < lane.outstanding) lane = l;
    lane.inFlight.push({ jobs, done });
    lane.outstanding += jobs.length;
    lane.worker.postMessage(jobs);
  }

  #lane(): Lane {
    // The worker is this module's sibling: .js once built, .ts when the gateway runs from source
    // under tsx (tests, bench), whose loader Node 20 does not carry into a worker: the worker
    // then registers it itself before it imports the module.
    const ext = extname(fileURLToPath(import.meta.url));
    const url = new URL(`./pool-worker${ext}`, import.meta.url);
    const workerData: CryptoPoolData = { signingKey: this.signingKey };
    const worker =
      ext === '.ts'
        ? new Worker(
            `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`,
            { eval: true, workerData },
          )
        : new Worker(url, { workerData });
    worker.unref();
    const lane: Lane = { worker, answered: false, inFlight: [], outstanding: 0 };
    worker.on('message', (results: (boolean | Uint8Array)[]) => {
      lane.answered = true;
      const batch = lane.inFlight.shift();
      if (!batch) return;
      lane.outstanding -= batch.jobs.length;
      batch.done.forEach((d, i) => {
        d(results[i]!);
      });
    });
    const fail = () => {
      if (this.#closed) return;
      this.#retire(lane);
      void worker.terminate();
      const i = this.#lanes.indexOf(lane);
      if (i < 0) return;
      if (lane.answered) this.#lanes[i] = this.#lane();
      else this.#lanes.splice(i, 1);
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    return lane;
  }

  /** Stops listening to a lane's worker (which may still report an error) and runs its jobs here. */
  #retire(lane: Lane): void {
    lane.worker.removeAllListeners();
    lane.worker.on('error', () => {});
    for (const batch of lane.inFlight.splice(0)) this.#runHere(batch.jobs, batch.done);
  }

  #runHere(jobs: readonly CryptoJob[], done: readonly Done[]): void {
    jobs.forEach((job, i) => {
      done[i]!(this.#run(job));
    });
  }

  #run(job: CryptoJob): boolean | Uint8Array {
    return job.op === 'sign'
      ? signToBeSigned(this.signingKey, COSE_ALG.ES256, job.data)
      : runSignatureCheck(job.check);
  }
}
