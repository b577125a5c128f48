import { rcBase, TPM_RC } from '../../shared/tpm/rc.ts';

/** Codes that mean "not now, same command later": the TPM is busy, self-testing or was interrupted. */
export const RETRYABLE = new Set<number>([TPM_RC.RETRY, TPM_RC.TESTING, TPM_RC.YIELDED]);

export interface RetryPolicy {
  attempts: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

// Self-test on a discrete TPM can take around a second; 8 attempts doubling from 10 ms cover ~2.5 s.
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, firstDelayMs: 10, maxDelayMs: 1000 };

export function isRetryable(rc: number): boolean {
  return RETRYABLE.has(rcBase(rc));
}

export function backoff(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** attempt);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
