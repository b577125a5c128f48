// MQTT topic filters (3.1.1 §4.7): `+` one level, `#` the rest (and the parent level itself).

/** Whether `topic` matches the subscription `filter`. Topics starting with `$` match no wildcard at the first level. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return !(i === 0 && topic.startsWith('$'));
    if (i >= t.length) return false;
    if (level === '+') {
      if (i === 0 && topic.startsWith('$')) return false;
      continue;
    }
    if (level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether any of these filters matches `topic`. */
export function anyMatches(filters: Iterable<string>, topic: string): boolean {
  for (const f of filters) if (topicMatches(f, topic)) return true;
  return false;
}
