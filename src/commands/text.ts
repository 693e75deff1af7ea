/** How the commands put numbers into words. */
import type { Evaluation } from '../training.js';

/** "1 sequence", "5 sequences" */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function percent(share: number): string {
  return `${(100 * share).toFixed(1)}%`;
}

/** "2.4141 ± 0.0123 bits/sequence" */
export function boundText(evaluation: Pick<Evaluation, 'bound_bits' | 'bound_stderr'>): string {
  if (!Number.isFinite(evaluation.bound_stderr)) return `${evaluation.bound_bits.toFixed(4)} bits/sequence (no standard error from one repeat)`;
  return `${evaluation.bound_bits.toFixed(4)} ± ${evaluation.bound_stderr.toFixed(4)} bits/sequence`;
}

/** "96.0% in train, 2.0% only in val, 2.0% other; 7 distinct of 100" */
export function proportionsText(evaluation: Evaluation, dataName: string): string {
  return (
    `${percent(evaluation.prop_train)} in train, ${percent(evaluation.prop_data)} only in ${dataName}, ` +
    `${percent(evaluation.prop_other)} other; ${evaluation.distinct} distinct of ${evaluation.samples}`
  );
}
