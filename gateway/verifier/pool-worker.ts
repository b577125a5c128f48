import { parentPort, workerData } from 'node:worker_threads';
import { COSE_ALG, signToBeSigned } from '../../shared/cose/sign1.ts';
import { runSignatureCheck } from '../../shared/tpm/signature.ts';
import type { CryptoJob, CryptoPoolData } from './pool.ts';

// A worker of the verifier's crypto pool (pool.ts): takes a batch of jobs and answers with their
// results in the same order. It holds the gateway's EAR signing key, given when it started; the
// checks it runs are the very functions the gateway runs when it has no pool.

const { signingKey } = workerData as CryptoPoolData;

parentPort!.on('message', (jobs: readonly CryptoJob[]) => {
  parentPort!.postMessage(
    jobs.map((job) =>
      job.op === 'sign' ? signToBeSigned(signingKey, COSE_ALG.ES256, job.data) : runSignatureCheck(job.check),
    ),
  );
});
