import { signal } from '@preact/signals';

/** Now, to the second: what "expires in" and "ago" are counted from. */
export const now = signal(Date.now());
setInterval(() => {
  now.value = Date.now();
}, 1000);
