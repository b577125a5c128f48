import { useEffect, useRef } from 'preact/hooks';
import type uPlot from 'uplot';
import type { ActivityView } from '../activity.ts';
import { api } from './api.ts';
import { onEvent, onResync } from './live.ts';

// Rounds settled per minute and failed rounds per minute, last hour (uPlot, canvas). The gateway
// counts; the chart asks again after settled rounds arrive (at most every 2 s) and every minute,
// so that it never disagrees with the gateway. uPlot loads after the page's first render.

const HEIGHT = 120;
const RELOAD_MS = 60_000;
const AFTER_EVENTS_MS = 2000;

function options(width: number): uPlot.Options {
  return {
    width,
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(5, max)] } },
    series: [
      {},
      {
        label: 'rounds',
        stroke: '#2563eb',
        fill: 'rgba(37, 99, 235, 0.12)',
        width: 1.5,
        points: { show: false },
      },
      { label: 'failed', stroke: '#dc2626', width: 1.5, points: { show: false } },
    ],
    axes: [{ stroke: '#6b7280' }, { stroke: '#6b7280', size: 44 }],
    legend: { show: true, live: false },
  };
}

function columns(v: ActivityView): uPlot.AlignedData {
  return [
    v.buckets.map((b) => b.at / 1000),
    v.buckets.map((b) => b.rounds),
    v.buckets.map((b) => b.failures),
  ];
}

export function ActivityChart() {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current!;
    let plot: uPlot | undefined;
    let closed = false;
    let soon: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      soon = undefined;
      try {
        const [view, { default: UPlot }] = await Promise.all([
          api<ActivityView>('GET', 'v1/fleet/activity'),
          import('uplot'),
        ]);
        if (closed) return;
        plot ??= new UPlot(options(Math.max(200, el.clientWidth)), [[], [], []], el);
        plot.setData(columns(view));
      } catch {
        // The fleet page shows the gateway's errors; the chart keeps what it drew.
      }
    };
    void load();
    const every = setInterval(load, RELOAD_MS);
    const off = [
      onEvent((e) => {
        if (e.kind === 'round' && e.round.state !== 'pending') soon ??= setTimeout(load, AFTER_EVENTS_MS);
      }),
      onResync(() => void load()),
    ];
    const resized = new ResizeObserver(() =>
      plot?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }),
    );
    resized.observe(el);
    return () => {
      closed = true;
      clearInterval(every);
      if (soon) clearTimeout(soon);
      for (const f of off) f();
      resized.disconnect();
      plot?.destroy();
    };
  }, []);
  return (
    <div class="activity" ref={box} role="img" aria-label="Rounds settled and failed per minute, last hour" />
  );
}
