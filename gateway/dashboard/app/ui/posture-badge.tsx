import type { Posture } from '../../../model.ts';

export const POSTURE_ORDER: readonly Posture[] = [
  'affirming',
  'warning',
  'contraindicated',
  'stale',
  'enrolling',
  'unknown',
];

export function PostureBadge({ posture }: { posture: Posture }) {
  return <span class={`badge posture-${posture}`}>{posture}</span>;
}
