// Times for people: clock times in the browser's zone, and short spans ("4m 10s").

const pad = (n: number) => String(n).padStart(2, '0');

export function clockTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(ms)}`;
}

export function span(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "in 4m 10s", "expired 12s ago", or a dash when there is no expiry. */
export function expiresIn(expires: number | null, now: number): string {
  if (expires === null) return '—';
  return expires >= now ? `in ${span(expires - now)}` : `expired ${span(now - expires)} ago`;
}

export function ago(at: number, now: number): string {
  return at > now ? 'just now' : `${span(now - at)} ago`;
}

/** "in 4m 10s" or "4m 10s ago". */
export function fromNow(at: number, now: number): string {
  return at >= now ? `in ${span(at - now)}` : `${span(now - at)} ago`;
}
