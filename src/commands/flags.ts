/** Checks of command-line flag values that yargs does not do. */
import { UserError } from '../errors.js';

/** Parses a --given pattern ('0', '1', '?' per bit) for a model of `length` bits. */
export function parseGivenPattern(pattern: string, length: number): Uint8Array {
  const bad = [...pattern].findIndex((c) => c !== '0' && c !== '1' && c !== '?');
  if (bad >= 0) {
    throw new UserError(`--given: character ${bad + 1} is ${JSON.stringify(pattern[bad])}; use 0 and 1 for known bits and ? for unknown ones`);
  }
  if (pattern.length !== length) {
    throw new UserError(`--given has ${pattern.length} characters but the model's sequences have ${length} bits`);
  }
  return Uint8Array.from(pattern, (c) => (c === '?' ? 2 : c === '1' ? 1 : 0));
}

/** Checks a non-negative integer flag (yargs gives NaN for text). */
export function integerFlag(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new UserError(`--${name}: expected an integer, got ${Number.isNaN(value) ? 'something that is not a number' : value}`);
  if (value < min || value > max) throw new UserError(`--${name}: out of range: must be >= ${min} and <= ${max}, got ${value}`);
  return value;
}
