/** Checks of command-line flag values that yargs does not do. */
import { UserError } from '../errors.js';

/**
 * Parses a --given pattern ('0', '1', '?' per bit) for a model of `length` bits. White space
 * (spaces, line breaks) is ignored, so an image's H×W pattern may be given as H lines of W
 * characters; `shape` (the model's, [H, W] for images) only words the length message.
 */
export function parseGivenPattern(pattern: string, length: number, shape?: readonly number[]): Uint8Array {
  const bad = [...pattern].findIndex((c) => c !== '0' && c !== '1' && c !== '?' && !/\s/.test(c));
  if (bad >= 0) {
    throw new UserError(`--given: character ${bad + 1} is ${JSON.stringify(pattern[bad])}; use 0 and 1 for known bits and ? for unknown ones`);
  }
  const compact = pattern.replace(/\s+/g, '');
  if (compact.length !== length) {
    const what = shape !== undefined && shape.length === 2 ? `images have ${shape[0]}x${shape[1]} = ${length} pixels` : `sequences have ${length} bits`;
    throw new UserError(`--given has ${compact.length} characters but the model's ${what}`);
  }
  return Uint8Array.from(compact, (c) => (c === '?' ? 2 : c === '1' ? 1 : 0));
}

/** Checks a non-negative integer flag (yargs gives NaN for text). */
export function integerFlag(name: string, value: number, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new UserError(`--${name}: expected an integer, got ${Number.isNaN(value) ? 'something that is not a number' : value}`);
  if (value < min || value > max) throw new UserError(`--${name}: out of range: must be >= ${min} and <= ${max}, got ${value}`);
  return value;
}
