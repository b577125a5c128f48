import type { Sample, SegmentTrend } from './soak-trend.ts';

// The soak's samples as a small SVG (no plotting dependency): the gateway's RSS and its live heap
// after a full collection (dots; left axis) and open descriptors (right axis) over minutes, the
// restart as a dashed line, and each process's fitted trends over the part of it that was fitted.

const W = 760;
const H = 320;
const M = { left: 56, right: 60, top: 34, bottom: 40 };
const RSS_COLOUR = '#1f5fa8';
const FDS_COLOUR = '#c8661b';
const HEAP_COLOUR = '#2e8b3e';

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function soakSvg(
  samples: readonly Sample[],
  trends: readonly SegmentTrend[],
  restartAtS: number | undefined,
  title: string,
): string {
  const tMax = Math.max(1, ...samples.map((s) => s.t)) / 60;
  const rssMax = niceMax(Math.max(...samples.map((s) => s.rssMb)) * 1.1);
  const fdsMax = niceMax(Math.max(...samples.map((s) => s.fds)) * 1.1);
  const r1 = (v: number) => Math.round(v * 10) / 10;
  const x = (min: number) => r1(M.left + (min / tMax) * (W - M.left - M.right));
  const yRss = (mb: number) => r1(H - M.bottom - (mb / rssMax) * (H - M.top - M.bottom));
  const yFds = (n: number) => r1(H - M.bottom - (n / fdsMax) * (H - M.top - M.bottom));
  const path = (seg: number, y: (s: Sample) => number) =>
    samples
      .filter((s) => s.segment === seg)
      .map((s, i) => `${i === 0 ? 'M' : 'L'}${x(s.t / 60).toFixed(1)},${y(s).toFixed(1)}`)
      .join(' ');
  const segments = [...new Set(samples.map((s) => s.segment))];
  const ticks = 5;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(title)}: gateway RSS and open descriptors over time</title>`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="#999"/>`,
  ];
  for (let i = 0; i <= ticks; i++) {
    const f = i / ticks;
    const yy = r1(H - M.bottom - f * (H - M.top - M.bottom));
    parts.push(
      `<line x1="${M.left}" y1="${yy}" x2="${W - M.right}" y2="${yy}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${yy + 4}" text-anchor="end" fill="${RSS_COLOUR}">${Math.round(f * rssMax)}</text>`,
      `<text x="${W - M.right + 6}" y="${yy + 4}" fill="${FDS_COLOUR}">${Math.round(f * fdsMax)}</text>`,
      `<text x="${x(f * tMax)}" y="${H - M.bottom + 16}" text-anchor="middle">${(f * tMax).toFixed(1)}</text>`,
    );
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 6}" text-anchor="middle">minutes</text>`,
    `<text x="14" y="${H / 2}" transform="rotate(-90 14 ${H / 2})" text-anchor="middle"><tspan fill="${RSS_COLOUR}">gateway RSS</tspan>, <tspan fill="${HEAP_COLOUR}">live heap</tspan>, MB</text>`,
    `<text x="${W - 12}" y="${H / 2}" transform="rotate(90 ${W - 12} ${H / 2})" text-anchor="middle" fill="${FDS_COLOUR}">open descriptors</text>`,
  );
  if (restartAtS !== undefined)
    parts.push(
      `<line x1="${x(restartAtS / 60)}" y1="${M.top}" x2="${x(restartAtS / 60)}" y2="${H - M.bottom}" stroke="#666" stroke-dasharray="4 3"/>`,
      `<text x="${x(restartAtS / 60) + 4}" y="${M.top + 10}" fill="#666">restart</text>`,
    );
  for (const seg of segments)
    parts.push(
      `<path d="${path(seg, (s) => yRss(s.rssMb))}" fill="none" stroke="${RSS_COLOUR}" stroke-width="1.5"/>`,
      `<path d="${path(seg, (s) => yFds(s.fds))}" fill="none" stroke="${FDS_COLOUR}" stroke-width="1.5"/>`,
    );
  for (const s of samples)
    if (s.liveHeapMb !== undefined)
      parts.push(`<circle cx="${x(s.t / 60)}" cy="${yRss(s.liveHeapMb)}" r="2.5" fill="${HEAP_COLOUR}"/>`);
  for (const t of trends) {
    const [a, b] = [t.from / 60, t.to / 60];
    const signed = (v: number, digits: number) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
    parts.push(
      `<line x1="${x(a)}" y1="${yRss(t.rss.intercept + t.rss.slope * a)}" x2="${x(b)}" y2="${yRss(t.rss.intercept + t.rss.slope * b)}" stroke="${RSS_COLOUR}" stroke-dasharray="2 2"/>`,
      `<line x1="${x(a)}" y1="${yFds(t.fds.intercept + t.fds.slope * a)}" x2="${x(b)}" y2="${yFds(t.fds.intercept + t.fds.slope * b)}" stroke="${FDS_COLOUR}" stroke-dasharray="2 2"/>`,
    );
    const labels = [
      {
        y: yRss(t.rss.intercept + t.rss.slope * b) - 6,
        fill: RSS_COLOUR,
        text: `${signed(t.rss.slope, 2)} MB/min`,
      },
      {
        y: yFds(t.fds.intercept + t.fds.slope * b) + 14,
        fill: FDS_COLOUR,
        text: `${signed(t.fds.slope, 1)} fds/min`,
      },
    ];
    const h = t.liveHeap;
    if (h) {
      parts.push(
        `<line x1="${x(a)}" y1="${yRss(h.intercept + h.slope * a)}" x2="${x(b)}" y2="${yRss(h.intercept + h.slope * b)}" stroke="${HEAP_COLOUR}" stroke-dasharray="2 2"/>`,
      );
      labels.push({
        y: yRss(h.intercept + h.slope * b) - 6,
        fill: HEAP_COLOUR,
        text: `${signed(h.slope, 2)} MB/min`,
      });
    }
    // Lines that end close together would print their slopes over each other: stack them.
    labels.sort((p, q) => p.y - q.y);
    for (let i = 1; i < labels.length; i++) labels[i]!.y = Math.max(labels[i]!.y, labels[i - 1]!.y + 14);
    for (const l of labels)
      parts.push(
        `<text x="${x(b) - 4}" y="${l.y.toFixed(1)}" text-anchor="end" fill="${l.fill}">${l.text}</text>`,
      );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
