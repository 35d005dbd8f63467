// The Evaluate tab: the quick suites run on a Character with the model in use, and the runs kept.
import { call, stream } from './ipc';
import type { EvalEvent, EvalRun } from './types';

/** Runs the quick suites on a Character; `onEvent` gets the progress. Resolves to the kept run. */
export const runEval = (characterId: string, onEvent: (e: EvalEvent) => void) =>
  stream<EvalEvent, EvalRun>('run_eval', { characterId }, onEvent);
/** Stops the running evaluation; what was measured is kept. */
export const cancelEval = () => call<void>('cancel_eval');
/** The runs kept for a Character, newest first. */
export const evalRuns = (characterId: string) => call<EvalRun[]>('eval_runs', { characterId });
export const deleteEvalRun = (id: number) => call<void>('delete_eval_run', { id });
