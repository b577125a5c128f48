import { createHash } from 'node:crypto';
import type { SimSoftware } from '../../equipment/sim/attester.ts';

/**
 * Software no policy registers, named with markup: a device running it is contraindicated
 * (sw-not-allowed), and its name (device-side text) reaches the dashboard in the round's detail.
 */
export const ROGUE_SOFTWARE: SimSoftware = {
  name: '<img src=x onerror="window.__pwned=1">',
  version: '<b>6.6.6</b>',
  digest: createHash('sha256').update('rogue build').digest('hex'),
};

/** A label value with markup, as a store written by another path could hold. */
export const MARKUP_LABEL = '<b id="injected">bold</b><script>window.__pwned=1</script>';
