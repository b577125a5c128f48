// How much of a round's deadline the MCUs get (docs/serial.md §7). The agent asks its MCUs as
// soon as a challenge arrives, while the TPM activates a credential when asked; what it must
// still do after the last MCU answered is read the PCRs, quote (about 210 ms on an SLB 9670, up
// to three times when a PCR moves between read and quote) and publish. That reserve is a quarter
// of the deadline, at least 250 ms and at most 2 s: a 10 s deadline gives the MCUs 8 s, a 2 s
// deadline 1.5 s. A silent MCU costs the round its whole budget, never the round itself.

const RESERVE_SHARE = 0.25;
const RESERVE_MIN_MS = 250;
const RESERVE_MAX_MS = 2000;

/** Milliseconds the MCUs may take in a round whose challenge gave `deadlineMs`; 0 when none fit. */
export function mcuBudgetMs(deadlineMs: number): number {
  const reserve = Math.min(RESERVE_MAX_MS, Math.max(RESERVE_MIN_MS, deadlineMs * RESERVE_SHARE));
  return Math.max(0, Math.floor(deadlineMs - reserve));
}
