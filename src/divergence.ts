/**
 * Divergence is detected, not recorded: a training step whose loss or gradient norm is not finite,
 * or that left non-finite weights, optimiser moments or EMA (the core checks them after every
 * update), stops the run with one line naming the step and the likely cause, exit code 3. So does
 * an evaluation whose bound is not finite. A diverged model is never trained on, saved, selected
 * as the best, or reported as a bound.
 */
import { UserError } from './errors.js';

/** Exit code of a run that diverged (2 is a user error, 130 an interrupt). */
export const DIVERGED_EXIT_CODE = 3;

export class DivergenceError extends UserError {
  constructor(
    readonly step: number,
    /** What became non-finite, e.g. "the loss is NaN". */
    readonly problem: string,
    /** What to try, and what happened to the model (added by the command that knows). */
    readonly advice = 'the learning rate (or the weight decay) is likely too large',
  ) {
    super(`training diverged at step ${step}: ${problem}; ${advice}`, DIVERGED_EXIT_CODE);
    this.name = 'DivergenceError';
  }

  /** The same divergence with the command's own advice (the config's values, the model kept). */
  withAdvice(advice: string): DivergenceError {
    return new DivergenceError(this.step, this.problem, advice);
  }
}

function describeNumber(value: number): string {
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'infinite' : '-infinite';
}

/** Throws a DivergenceError when the report of step `step` (1-based: the step just taken) is not finite. */
export function checkStepReport(step: number, report: { loss: number; gradNorm: number; finite?: boolean }): void {
  if (!Number.isFinite(report.loss)) throw new DivergenceError(step, `the training loss is ${describeNumber(report.loss)}`);
  if (!Number.isFinite(report.gradNorm)) throw new DivergenceError(step, `the gradient norm is ${describeNumber(report.gradNorm)}`);
  if (report.finite === false) throw new DivergenceError(step, 'the update left NaN or infinite weights (or optimiser moments)');
}

/** Throws a DivergenceError when an evaluation's bound (or its standard error) is not finite. */
export function checkEvaluationBound(step: number, evaluation: { bound_bits: number }): void {
  if (!Number.isFinite(evaluation.bound_bits)) {
    throw new DivergenceError(step, `the bound on the validation data is ${describeNumber(evaluation.bound_bits)}`);
  }
}

/** "the learning rate (10) or the weight decay (10) is likely too large" from a run's training settings. */
export function likelyCause(training: { lr: number; weight_decay: number; clip_norm: number }): string {
  const causes = [`the learning rate (training.lr = ${training.lr})`];
  if (training.weight_decay > 0) causes.push(`the weight decay (training.weight_decay = ${training.weight_decay})`);
  const cause = `${causes.join(' or ')} is likely too large`;
  return training.clip_norm === 0 ? `${cause}, with gradient clipping off (training.clip_norm = 0)` : cause;
}
