/**
 * Calls `issue` on every item, `size` at a time, letting the event loop run between slices: a
 * fleet round issued this way has its first evidence appraised while later challenges still go
 * out, instead of writing every challenge before reading any answer.
 */
export async function inSlices<T>(
  items: readonly T[],
  size: number,
  issue: (item: T) => void,
): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const item of items.slice(i, i + size)) issue(item);
  }
}
