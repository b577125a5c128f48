import type { PostureEventView } from '../../../api/views.ts';
import type { Posture } from '../../../model.ts';
import { dateTime, span } from '../format.ts';
import { Codes } from '../ui/codes.tsx';
import { PostureBadge } from '../ui/posture-badge.tsx';

// A device's posture over time: a band whose segments are as wide as each posture lasted, from
// the oldest event shown to now, and the events themselves as a list.

interface Segment {
  readonly posture: Posture;
  readonly from: number;
  readonly to: number;
}

export function segments(events: readonly PostureEventView[], now: number): Segment[] {
  const oldestFirst = [...events].sort((a, b) => a.at - b.at);
  return oldestFirst.map((e, i) => ({ posture: e.to, from: e.at, to: oldestFirst[i + 1]?.at ?? now }));
}

export function PostureTimeline({ events, now }: { events: readonly PostureEventView[]; now: number }) {
  if (events.length === 0) return <p class="muted">No posture change recorded yet.</p>;
  const segs = segments(events, now);
  const start = segs[0]!.from;
  return (
    <div class="timeline">
      <div class="band" role="img" aria-label="Posture over time">
        {segs.map((s) => (
          <span
            key={s.from}
            class={`seg posture-${s.posture}`}
            style={{ flexGrow: Math.max(1, s.to - s.from) }}
            title={`${s.posture} from ${dateTime(s.from)} for ${span(s.to - s.from)}`}
          />
        ))}
      </div>
      <div class="band-axis muted">
        <span>{dateTime(start)}</span>
        <span>now</span>
      </div>
      <ol class="events">
        {events.map((e) => (
          <li key={`${e.at}-${e.to}`} class="event">
            <time>{dateTime(e.at)}</time>
            <span class="transition">
              <PostureBadge posture={e.from} /> → <PostureBadge posture={e.to} />
            </span>
            {e.reasons.length > 0 && <Codes codes={e.reasons} />}
          </li>
        ))}
      </ol>
    </div>
  );
}
