// What the soak counts as lost, precisely. Each is a promise the gateway makes to operators and
// devices, checked from outside the gateway (its database file, what the devices received):
//
// - unsettled: a round the store says was issued and that never settled: still `pending` past its
//   deadline, once the fleet is gone and nothing can answer (a restarted gateway must re-arm the
//   deadlines of the rounds it left pending).
// - unrecorded: a result a device received whose round the store does not hold as appraised with
//   that very status (a verdict given and not recorded, or recorded otherwise than told).
// - staleWhileAnswering: a device that is connected, got a result within the last interval and
//   was told `affirming`, yet whose stored posture is not `affirming`.

export interface StoredRound {
  readonly state: string;
  readonly status: string | null;
}

export interface Told {
  readonly round: string;
  readonly status: string;
}

export interface Lost {
  readonly unsettled: readonly string[];
  readonly unrecorded: readonly { readonly round: string; readonly told: string; readonly stored: string }[];
  readonly staleWhileAnswering: readonly { readonly id: string; readonly posture: string }[];
}

export function lostRounds(
  pending: readonly { readonly id: string; readonly deadlineAt: number }[],
  now: number,
  slackMs: number,
): string[] {
  return pending.filter((r) => r.deadlineAt < now - slackMs).map((r) => r.id);
}

export function unrecordedResults(told: Iterable<Told>, stored: (round: string) => StoredRound | undefined) {
  const out: { round: string; told: string; stored: string }[] = [];
  for (const t of told) {
    const s = stored(t.round);
    if (s?.state !== 'appraised' || s.status !== t.status)
      out.push({
        round: t.round,
        told: t.status,
        stored: s ? `${s.state} ${s.status ?? ''}`.trim() : 'missing',
      });
  }
  return out;
}

export function staleWhileAnswering(
  answering: readonly { readonly id: string; readonly status: string | undefined }[],
  posture: ReadonlyMap<string, string>,
): { id: string; posture: string }[] {
  return answering
    .filter((a) => a.status === 'affirming' && posture.get(a.id) !== 'affirming')
    .map((a) => ({ id: a.id, posture: posture.get(a.id) ?? 'unknown to the gateway' }));
}

/** One line per result a device received: `round status`. */
export function parseTold(text: string): Told[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [round, status] = l.split(' ');
      return { round: round!, status: status! };
    });
}
