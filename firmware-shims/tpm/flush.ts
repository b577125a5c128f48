/**
 * Runs `use`, then flushes `handle` whatever happened: swtpm has no resource manager and an
 * SLB 9670 holds three objects, so a leaked handle soon fails every later command. A flush
 * failure after `use` failed is dropped so it does not hide the error that matters.
 */
export async function withFlushed<T>(
  tpm: { flush(handle: number): Promise<void> },
  handle: number,
  use: (handle: number) => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await use(handle);
  } catch (err) {
    await tpm.flush(handle).catch(() => undefined);
    throw err;
  }
  await tpm.flush(handle);
  return result;
}
