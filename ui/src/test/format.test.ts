import { describe, expect, it } from 'vitest';
import { ago, params } from '../lib/format';

describe('ago', () => {
  it('speaks like a person', () => {
    const now = 1_000_000_000;
    expect(ago(now - 10_000, now)).toBe('just now');
    expect(ago(now - 5 * 60_000, now)).toBe('5 minutes ago');
    expect(ago(now - 3 * 86_400_000, now)).toBe('3 days ago');
  });
});

describe('params', () => {
  it('rounds to what a person reads', () => {
    expect(params(134_515_008)).toBe('135 M');
    expect(params(494_032_768)).toBe('494 M');
    expect(params(7_241_732_096)).toBe('7.2 B');
    expect(params(12_000_000_000)).toBe('12 B');
  });
});
