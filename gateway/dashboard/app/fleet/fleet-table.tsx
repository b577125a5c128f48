import { useSignal } from '@preact/signals';
import { useEffect, useRef } from 'preact/hooks';
import type { DeviceView } from '../../../api/views.ts';
import { now } from '../clock.ts';
import { ago, expiresIn } from '../format.ts';
import { href } from '../route.ts';
import { Labels } from '../ui/labels.tsx';
import { PostureBadge } from '../ui/posture-badge.tsx';
import { RoundOutcome } from '../ui/round-outcome.tsx';
import { PAGE, pages, showRows, summary } from './fleet-data.ts';

// The fleet as a virtual table: its body is as tall as every matching row would be, and only the
// rows on screen (and a few beyond) exist in the page, so 10,000 devices scroll as smoothly as
// ten. Rows have one fixed height per layout (two lines on narrow screens); the CSS uses the same
// numbers (.fleet-row). Table elements laid out as grids keep the table's semantics.

const ROW_WIDE = 44;
const ROW_NARROW = 64;
const NARROW = '(max-width: 720px)';
const OVERSCAN = 8;

export function FleetTable() {
  const scroller = useRef<HTMLDivElement>(null);
  const head = useRef<HTMLTableSectionElement>(null);
  const view = useSignal({ first: 0, count: 20, row: ROW_WIDE });

  useEffect(() => {
    const el = scroller.current!;
    const narrow = matchMedia(NARROW);
    const measure = () => {
      const row = narrow.matches ? ROW_NARROW : ROW_WIDE;
      const first = Math.floor(Math.max(0, el.scrollTop - (head.current?.offsetHeight ?? 0)) / row);
      const count = Math.ceil(el.clientHeight / row) + 1;
      view.value = { first, count, row };
      showRows(Math.max(0, first - OVERSCAN), first + count + OVERSCAN);
    };
    measure();
    el.addEventListener('scroll', measure, { passive: true });
    narrow.addEventListener('change', measure);
    const resized = new ResizeObserver(measure);
    resized.observe(el);
    return () => {
      el.removeEventListener('scroll', measure);
      narrow.removeEventListener('change', measure);
      resized.disconnect();
    };
  }, []);

  const matched = summary.value?.matched ?? 0;
  const { first, count, row } = view.value;
  const from = Math.max(0, first - OVERSCAN);
  const to = Math.min(matched, first + count + OVERSCAN);
  const loaded = pages.value;
  const rows = [];
  for (let i = from; i < to; i++) {
    const d = loaded.get(Math.floor(i / PAGE))?.[i % PAGE];
    rows.push(<Row key={d?.id ?? `i${i}`} index={i} top={i * row} device={d} />);
  }
  return (
    <div class="fleet-scroll" ref={scroller}>
      <table class="fleet-table" aria-label="Devices" aria-rowcount={matched + 1}>
        <thead ref={head}>
          <tr class="fleet-row fleet-head">
            <th>Device</th>
            <th>Posture</th>
            <th class="col-labels">Labels</th>
            <th>Last round</th>
            <th>Expires</th>
          </tr>
        </thead>
        <tbody class="fleet-space" style={{ height: `${matched * row}px` }}>
          {rows}
        </tbody>
      </table>
    </div>
  );
}

function Row({ index, top, device: d }: { index: number; top: number; device: DeviceView | undefined }) {
  const style = { transform: `translateY(${top}px)` };
  if (!d)
    return (
      <tr class="fleet-row loading" aria-rowindex={index + 2} style={style}>
        <td class="muted">…</td>
      </tr>
    );
  return (
    <tr class={`fleet-row row-${d.posture}`} aria-rowindex={index + 2} data-device={d.id} style={style}>
      <td class="col-id">
        <span class={d.connected ? 'dot on' : 'dot'} title={d.connected ? 'connected' : 'not connected'} />
        <a href={href({ page: 'device', id: d.id })} class="mono">
          {d.id}
        </a>
      </td>
      <td class="col-posture">
        <PostureBadge posture={d.posture} />
      </td>
      <td class="col-labels">
        <Labels labels={d.labels} />
      </td>
      <td class="col-round">
        {d.lastRound ? (
          <>
            <RoundOutcome round={d.lastRound} />{' '}
            <span class="muted round-when">
              {d.lastRound.reason}, {ago(d.lastRound.appraisedAt ?? d.lastRound.issuedAt, now.value)}
            </span>
          </>
        ) : (
          <span class="muted">none yet</span>
        )}
      </td>
      <td class="col-expires">{expiresIn(d.expires, now.value)}</td>
    </tr>
  );
}
