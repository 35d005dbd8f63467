// Small formatting helpers for what the window shows: relative times, labels, parameter counts.
import { t } from './i18n.svelte';
import type { Key } from './messages';

const units: [number, Key, Key][] = [
  [60, 'ago.second', 'ago.seconds'],
  [60, 'ago.minute', 'ago.minutes'],
  [24, 'ago.hour', 'ago.hours'],
  [7, 'ago.day', 'ago.days'],
  [4.35, 'ago.week', 'ago.weeks'],
  [12, 'ago.month', 'ago.months'],
  [Number.POSITIVE_INFINITY, 'ago.year', 'ago.years'],
];

/** "just now", "5 minutes ago", "3 days ago" (in the window's language). */
export function ago(ms: number, now = Date.now()): string {
  let v = Math.max(0, (now - ms) / 1000);
  if (v < 45) return t('ago.now');
  for (const [size, one, many] of units) {
    if (v < size) {
      const n = Math.round(v);
      return t(n === 1 ? one : many, { n });
    }
    v /= size;
  }
  return '';
}

export const categoryLabel = (c: string) =>
  ({ celebrity: t('category.celebrity'), daily_life: t('category.daily_life'), fictional: t('category.fictional') })[c] ?? c;

export const scenarioLabel = (s: string) =>
  ({ chit_chat: t('scenario.chit_chat'), interview: t('scenario.interview'), companionship: t('scenario.companionship') })[s] ?? s;

export const scenarioBlurb = (s: string) =>
  ({ chit_chat: t('scenario.chit_chat.blurb'), interview: t('scenario.interview.blurb'), companionship: t('scenario.companionship.blurb') })[s] ?? '';

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
