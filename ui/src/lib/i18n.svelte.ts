// The window's language: every string it shows comes from `messages.ts` through `t`. English and
// Simplified Chinese; chosen in Settings → Appearance, or from the system's language when
// Settings says "system". A Character's own language is its own: cards, profiles and replies are
// never translated.
import { messages, type Key } from './messages';
import type { ApiError } from '../api/types';

export type Locale = 'en' | 'zh-CN';
export const LOCALES: Locale[] = ['en', 'zh-CN'];

export const i18n = $state<{ locale: Locale }>({ locale: 'en' });

/** The message for `key` in the window's language, with `{name}` placeholders filled in. */
export function t(key: Key, params?: Record<string, string | number>): string {
  const text = messages[key][i18n.locale === 'zh-CN' ? 1 : 0];
  return params ? text.replace(/\{(\w+)\}/g, (m, k: string) => (k in params ? String(params[k]) : m)) : text;
}

/**
 * A backend error as the window says it. The backend's message names the file and the problem
 * in English; the Chinese window puts the catalog's sentence for the error's code before it, so
 * the reader knows what happened even where the detail stays English.
 */
export function errorText(e: unknown): string {
  const err = e as Partial<ApiError> | null | undefined;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (i18n.locale !== 'zh-CN' || !err?.code) return message;
  const key = `error.${err.code}`;
  return key in messages ? `${t(key as Key)}（${message}）` : message;
}

/** The locale for a system language tag ("zh-Hans-CN", "zh-TW", "en-GB"…). */
export function fromTag(tag: string | undefined): Locale {
  return tag?.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

/** Applies Settings' choice: "system", "en" or "zh-CN". */
export function setLanguage(choice: string) {
  i18n.locale = choice === 'en' || choice === 'zh-CN' ? choice : fromTag(navigator.language);
  document.documentElement.lang = i18n.locale;
}
