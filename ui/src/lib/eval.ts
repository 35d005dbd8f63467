// How the Evaluate tab names and shows a metric (the definitions are in docs/EVALUATION.md).
import type { EvalMetric } from '../api/types';

const labels: Record<string, string> = {
  'memory.fact_captured': 'Facts kept as memories',
  'memory.fact_in_prompt': 'Facts still in the prompt after a long chat',
  'memory.fact_in_reply': 'Facts recalled when asked',
  'memory.messages_before_questions': 'Messages before the questions',
  'consistency.early.names_self': 'Gives its own name (new chat)',
  'consistency.late.names_self': 'Gives its own name (long chat)',
  'consistency.early.profile_match': 'Answers match the profile (new chat)',
  'consistency.late.profile_match': 'Answers match the profile (long chat)',
  'consistency.early.breaks': 'Breaks character (new chat)',
  'consistency.late.breaks': 'Breaks character (long chat)',
  'repetition.loops': 'Replies that loop',
  'repetition.distinct_1': 'Distinct words',
  'repetition.distinct_2': 'Distinct word pairs',
  'repetition.longest_repeat': 'Longest phrase repeated',
  'speed.first_token_ms': 'First word after',
  'speed.tokens_per_second': 'Writing speed',
};

/** The sentence a person reads for a metric. */
export function metricLabel(m: Pick<EvalMetric, 'suite' | 'name'>): string {
  return labels[`${m.suite}.${m.name}`] ?? `${m.suite}: ${m.name.replaceAll('_', ' ')}`;
}

/** A metric's value with its unit. */
export function metricValue(m: Pick<EvalMetric, 'value' | 'unit'>): string {
  switch (m.unit) {
    case 'share':
      return `${Math.round(m.value * 100)}%`;
    case 'ms':
      return `${(m.value / 1000).toFixed(1)} s`;
    case 'tokens/s':
      return `${m.value.toFixed(0)} tokens/s`;
    case 'words':
      return `${m.value.toFixed(0)} words`;
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

export const headlineShort: Record<string, string> = {
  'memory.fact_in_prompt': 'Facts in prompt',
  'memory.fact_in_reply': 'Facts recalled',
  'consistency.late.profile_match': 'On profile (late)',
  'consistency.late.breaks': 'Breaks (late)',
  'repetition.loops': 'Loops',
  'repetition.distinct_2': 'Distinct pairs',
  'speed.first_token_ms': 'First word',
};
