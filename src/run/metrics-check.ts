/**
 * The fields of a metrics.jsonl record the pictures read, checked before anything is drawn: a
 * field of the wrong type is one line naming the file, the line and the field (not a TypeError
 * half-way through writing the pictures).
 */
import { UserError } from '../errors.js';

const NUMBER_FIELDS = ['epoch', 'lr', 'elapsed', 'grad_norm', 'bound_bits', 'bound_stderr', 'prop_train', 'prop_val', 'prop_other', 'distinct'] as const;

/** Throws a UserError `file:line: …` for a record whose known fields have the wrong type. */
export function checkMetricsRecord(record: Record<string, unknown>, where: string): void {
  if (!Number.isSafeInteger(record.step) || (record.step as number) < 0)
    throw new UserError(`${where}: "step" must be a whole number >= 0, got ${JSON.stringify(record.step)}`);
  for (const field of NUMBER_FIELDS) {
    const value = record[field];
    // null: a value JSON cannot hold (NaN, ±∞) as older versions wrote it; drawn as missing
    if (value !== undefined && value !== null && typeof value !== 'number')
      throw new UserError(`${where}: "${field}" must be a number, got ${JSON.stringify(value).slice(0, 40)}`);
  }
  const grid = record.grid;
  if (grid !== undefined) {
    if (!Array.isArray(grid) || !grid.every((line) => typeof line === 'string' && /^[01]+$/.test(line))) {
      throw new UserError(`${where}: "grid" must be a list of 0/1 strings`);
    }
    if (grid.some((line) => line.length !== grid[0].length)) throw new UserError(`${where}: the "grid" strings differ in length`);
  }
}
