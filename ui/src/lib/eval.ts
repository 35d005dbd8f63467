// How the Evaluate tab names and shows a metric (the definitions are in docs/EVALUATION.md).
import type { EvalMetric } from '../api/types';
import { t } from './i18n.svelte';
import { messages, type Key } from './messages';

// A metric's sentence is `metric.<suite>.<name>` in the message catalog.
const known = new Set(Object.keys(messages));
/** The sentence a person reads for a metric. */
export function metricLabel(m: Pick<EvalMetric, 'suite' | 'name'>): string {
  const key = `metric.${m.suite}.${m.name}`;
  return known.has(key) ? t(key as Key) : `${m.suite}: ${m.name.replaceAll('_', ' ')}`;
}

/** A metric's value with its unit. */
export function metricValue(m: Pick<EvalMetric, 'value' | 'unit'>): string {
  switch (m.unit) {
    case 'share':
      return `${Math.round(m.value * 100)}%`;
    case 'ms':
      return `${(m.value / 1000).toFixed(1)} s`;
    case 'tokens/s':
      return t('eval.perSecond', { n: m.value.toFixed(0) });
    case 'words':
      return t('eval.words', { n: m.value.toFixed(0) });
    case 'messages':
      return m.value.toFixed(0);
    default:
      return m.value.toFixed(2);
  }
}

/** The metrics a history row shows, in order. */
export const headline = [
  'memory.fact_in_prompt',
  'memory.fact_in_reply',
  'consistency.late.profile_match',
  'consistency.late.breaks',
  'repetition.loops',
  'repetition.distinct_2',
  'speed.first_token_ms',
];

/** A history column's short heading. */
export const headlineShort = (key: string) => t(`short.${key}` as Key);
