import { describe, expect, it } from 'vitest';
import { metricLabel, metricValue } from '../lib/eval';

describe('evaluation metrics', () => {
  it('name what a person reads, and fall back to the raw name', () => {
    expect(metricLabel({ suite: 'memory', name: 'fact_in_reply' })).toBe('Facts recalled when asked');
    expect(metricLabel({ suite: 'judge', name: 'human_likeness' })).toBe('judge: human likeness');
  });
  it('show units', () => {
    expect(metricValue({ value: 0.875, unit: 'share' })).toBe('88%');
    expect(metricValue({ value: 1234, unit: 'ms' })).toBe('1.2 s');
    expect(metricValue({ value: 41.6, unit: 'tokens/s' })).toBe('42 tokens/s');
    expect(metricValue({ value: 3.456, unit: '1-5' })).toBe('3.46');
  });
});
