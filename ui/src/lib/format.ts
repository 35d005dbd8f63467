// Message text as safe segments: markdown **bold** and role-play *actions* (italics); everything
// else stays plain text. Never HTML: card and model text is untrusted and is rendered as text
// nodes.
export type Segment = { text: string; action: boolean; strong?: boolean };

export function segments(text: string): Segment[] {
  const out: Segment[] = [];
  const re = /\*\*([^*\n]+)\*\*|\*([^*\n]+)\*|(?<!\w)_([^_\n]+)_(?!\w)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) out.push({ text: text.slice(last, m.index), action: false });
    if (m[1] !== undefined) out.push({ text: m[1], action: false, strong: true });
    else out.push({ text: m[2] ?? m[3], action: true });
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), action: false });
  return out;
}

const units: [number, string][] = [
  [60, 'second'],
  [60, 'minute'],
  [24, 'hour'],
  [7, 'day'],
  [4.35, 'week'],
  [12, 'month'],
  [Number.POSITIVE_INFINITY, 'year'],
];

/** "just now", "5 minutes ago", "3 days ago". */
export function ago(ms: number, now = Date.now()): string {
  let v = Math.max(0, (now - ms) / 1000);
  if (v < 45) return 'just now';
  for (const [size, unit] of units) {
    if (v < size) {
      const n = Math.round(v);
      return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
    }
    v /= size;
  }
  return '';
}

export const categoryLabel: Record<string, string> = {
  celebrity: 'Celebrity',
  daily_life: 'Daily life',
  fictional: 'Fictional',
};

export const scenarioLabel: Record<string, string> = {
  chit_chat: 'Chit-chat',
  interview: 'Interview',
  companionship: 'Companionship',
};

export const scenarioBlurb: Record<string, string> = {
  chit_chat: 'A relaxed conversation about anything.',
  interview: 'Ask about their life, work and views.',
  companionship: 'A caring friend who listens.',
};

/** A parameter count for people: "135 M", "7.2 B". */
export function params(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(n >= 1e10 ? 0 : 1)} B`;
  if (n >= 1e6) return `${Math.round(n / 1e6)} M`;
  return n.toLocaleString();
}

/** Two-letter initials, as the backend draws them (characters::initials). */
export function initialsOf(name: string): string {
  const words = name.split(/\s+/).filter((w) => /^[\p{L}\p{N}]/u.test(w));
  if (words.length === 0) return '?';
  const first = words[0][0].toUpperCase();
  return words.length > 1 ? first + words[words.length - 1][0].toUpperCase() : first;
}
