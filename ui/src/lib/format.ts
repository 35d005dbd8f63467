// Small formatting helpers for what the window shows: relative times, labels, parameter counts.

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
