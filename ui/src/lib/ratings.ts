// The paper's seven pointwise metrics, in its order, as the Rate dialog and the averages show
// them (labels and one-line meanings are in the message catalog under `rate.<metric>`).
import type { Scores } from '../api/types';

export const METRICS = ['consistency', 'humanLikeness', 'engagement', 'quality', 'safety', 'correctness', 'overall'] as const;
export type Metric = (typeof METRICS)[number];

/** Scores with every metric at `n` (the dialog's starting point for an unrated Session). */
export const allAt = (n: number): Scores =>
  Object.fromEntries(METRICS.map((m) => [m, n])) as unknown as Scores;
