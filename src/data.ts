/**
 * Datasets of fixed-length bit sequences: the heartbeat generator, data-file parsing and
 * formatting, and membership helpers for judging samples (strings in, strings out; browser-safe).
 */
import { UserError } from './errors.js';

/** `rows` sequences of `length` bits, row-major in `bits` (values 0/1), as the model takes them. */
export interface Sequences {
  length: number;
  rows: number;
  bits: Uint8Array;
  /**
   * The shape of one row: [L] for sequences, [H, W] for images (row-major, H·W = length). Parsed
   * data always has it (plain files: [L]); data made in code may leave it out (then [length]).
   */
  shape?: number[];
}

/** A data file's shape header, `# shape: 28x28` (H×W, row-major) or `# shape: 20` (1-D). */
const shapeHeaderPattern = /^#\s*shape\s*:/i;

/** The text of a shape for the header and messages: "28x28", "20". */
export function formatShape(shape: readonly number[]): string {
  return shape.join('x');
}

/**
 * Parses a shape written as "28x28" or "20" (1 or 2 positive integers joined by 'x'); undefined
 * when malformed.
 */
export function parseShape(text: string): number[] | undefined {
  const trimmed = text.trim();
  if (!/^[1-9][0-9]*(\s*[xX×]\s*[1-9][0-9]*)?$/.test(trimmed)) return undefined;
  const shape = trimmed.split(/\s*[xX×]\s*/).map(Number);
  return shape.every((n) => Number.isSafeInteger(n)) ? shape : undefined;
}

/** The heartbeat data set: L, P, K and the number of training rows. */
export interface HeartbeatSpec {
  /** L: bits per sequence. */
  length: number;
  /** P: one 1 every P bits. */
  period: number;
  /** K: the last K phases (P-K .. P-1) appear only in the validation data. */
  holdout: number;
  /** Number of training sequences. */
  count: number;
}

/** The heartbeat with the given phase: bit i is 1 exactly when (i - phase) is a multiple of P. */
export function heartbeatSequence(length: number, period: number, phase: number): Uint8Array {
  const bits = new Uint8Array(length);
  for (let i = phase; i < length; i += period) bits[i] = 1;
  return bits;
}

function stack(length: number, sequences: Uint8Array[]): Sequences {
  const bits = new Uint8Array(length * sequences.length);
  sequences.forEach((sequence, row) => bits.set(sequence, row * length));
  return { length, rows: sequences.length, bits };
}

/** All P heartbeats of the given length and period, one per phase 0..P-1 (each once). */
export function heartbeatPhases(length: number, period: number, phases?: number[]): Sequences {
  const which = phases ?? Array.from({ length: period }, (_, phase) => phase);
  return stack(
    length,
    which.map((phase) => heartbeatSequence(length, period, phase)),
  );
}

/**
 * Heartbeat data. Training phases are 0..P-K-1 and every one of them is equally likely: the
 * training rows cycle through them (so each appears count/(P-K) times, ±1). The validation data
 * is each held-out phase once, or each of the P phases once when nothing is held out. (The
 * original project drew the phase from one value fewer than the period, so one phase never
 * appeared; here every phase does.)
 */
export function heartbeatData(spec: HeartbeatSpec): { train: Sequences; val: Sequences; trainPhases: number[]; valPhases: number[] } {
  const { length, period, holdout, count } = spec;
  if (!(period >= 1 && period <= length && holdout >= 0 && holdout < period && count >= 1)) {
    throw new RangeError(`invalid heartbeat spec ${JSON.stringify(spec)}`);
  }
  const trainPhases = Array.from({ length: period - holdout }, (_, phase) => phase);
  const heldOut = Array.from({ length: holdout }, (_, k) => period - holdout + k);
  const valPhases = holdout > 0 ? heldOut : trainPhases;
  const patterns = trainPhases.map((phase) => heartbeatSequence(length, period, phase));
  const train = stack(
    length,
    Array.from({ length: count }, (_, row) => patterns[row % patterns.length]),
  );
  return { train, val: heartbeatPhases(length, period, valPhases), trainPhases, valPhases };
}

/**
 * The phase of a valid heartbeat of period P (exactly the bits phase, phase+P, … are 1), or -1.
 */
export function heartbeatPhaseOf(sequence: string, period: number): number {
  const phase = sequence.indexOf('1');
  if (phase < 0 || phase >= period) return -1;
  for (let i = 0; i < sequence.length; i++) {
    const expected = (i - phase) % period === 0 && i >= phase ? '1' : '0';
    if (sequence[i] !== expected) return -1;
  }
  return phase;
}

/** Whether `sequence` is a heartbeat of period `period` (any phase). */
export function isHeartbeat(sequence: string, period: number): boolean {
  return heartbeatPhaseOf(sequence, period) >= 0;
}

/** One sequence as a string of '0'/'1'. */
export function rowString(data: Sequences, row: number): string {
  let text = '';
  const start = row * data.length;
  for (let i = 0; i < data.length; i++) text += data.bits[start + i] === 1 ? '1' : '0';
  return text;
}

/** Every sequence as a string of '0'/'1'. */
export function rowStrings(data: Sequences): string[] {
  return Array.from({ length: data.rows }, (_, row) => rowString(data, row));
}

/** The distinct sequences of a dataset, as strings (for membership tests of samples). */
export function sequenceSet(data: Sequences): Set<string> {
  return new Set(rowStrings(data));
}

/** Sequences from strings of '0'/'1' (all the same length; programming errors throw). */
export function fromStrings(lines: string[]): Sequences {
  const length = lines.length > 0 ? lines[0].length : 0;
  const bits = new Uint8Array(length * lines.length);
  lines.forEach((line, row) => {
    if (line.length !== length || !/^[01]*$/.test(line)) throw new Error(`not a ${length}-bit sequence: ${line}`);
    for (let i = 0; i < length; i++) bits[row * length + i] = line.charCodeAt(i) - 48;
  });
  return { length, rows: lines.length, bits };
}

/**
 * Parses a data file: one sequence per line of '0'/'1'. Blank lines, leading and trailing
 * whitespace, CRLF line ends, a byte-order mark and lines starting with '#' are allowed. A comment
 * line `# shape: HxW` (or `# shape: L`) before the first sequence gives the shape of each row: the
 * product must equal the row length. Without it the shape is [L]. Every problem is a UserError
 * naming `source`, the line number and what is wrong.
 */
export function parseSequences(text: string, source: string): Sequences {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  let length = -1;
  let firstLine = 0;
  let shape: number[] | undefined;
  let shapeLine = 0;
  const kept: string[] = [];
  lines.forEach((rawLine, index) => {
    const lineNumber = index + 1;
    const line = rawLine.trim();
    if (shapeHeaderPattern.test(line)) {
      const written = line.replace(shapeHeaderPattern, '').trim();
      if (shape !== undefined) {
        throw new UserError(`${source}:${lineNumber}: a second shape header (line ${shapeLine} already gives the shape ${formatShape(shape)})`);
      }
      if (kept.length > 0) {
        throw new UserError(`${source}:${lineNumber}: the shape header must come before the first sequence (line ${firstLine})`);
      }
      const parsed = parseShape(written);
      if (parsed === undefined) {
        throw new UserError(
          `${source}:${lineNumber}: malformed shape header ${JSON.stringify(line)} (write e.g. "# shape: 28x28" for images or "# shape: 20" for sequences)`,
        );
      }
      shape = parsed;
      shapeLine = lineNumber;
      return;
    }
    if (line === '' || line.startsWith('#')) return;
    for (let column = 0; column < line.length; column++) {
      const char = line[column];
      if (char !== '0' && char !== '1') {
        const shown = /^[\x21-\x7e]$/.test(char) ? `'${char}'` : JSON.stringify(char);
        throw new UserError(
          `${source}:${lineNumber}: unexpected character ${shown} at column ${rawLine.indexOf(line) + column + 1} (a sequence is a line of 0s and 1s)`,
        );
      }
    }
    if (length < 0) {
      length = line.length;
      firstLine = lineNumber;
      const product = shape?.reduce((a, b) => a * b, 1);
      if (shape !== undefined && product !== length) {
        throw new UserError(
          `${source}:${lineNumber}: the sequence has ${length} bits but the shape ${formatShape(shape)} of line ${shapeLine} has ${product} (the product of the shape must equal the row length)`,
        );
      }
    } else if (line.length !== length) {
      throw new UserError(
        `${source}:${lineNumber}: the sequence has ${line.length} bits but line ${firstLine} has ${length} (all sequences must have the same length)`,
      );
    }
    kept.push(line);
  });
  if (kept.length === 0) {
    throw new UserError(`${source}: no sequences (the file is empty or has only blank and comment lines)`);
  }
  return { ...fromStrings(kept), shape: shape ?? [length] };
}

/**
 * The data-file form: optional '#' comment lines, then one line of 0/1 per sequence. A 2-D shape is
 * written as the header `# shape: HxW` first (1-D data needs no header: it is the default).
 */
export function formatSequences(data: Sequences, comments: string[] = []): string {
  const shape = data.shape;
  if (shape !== undefined && shape.reduce((a, b) => a * b, 1) !== data.length) {
    throw new Error(`the shape ${formatShape(shape)} does not have ${data.length} bits`);
  }
  const shapeHeader = shape !== undefined && shape.length > 1 ? `# shape: ${formatShape(shape)}\n` : '';
  const header = comments.map((comment) => `# ${comment}\n`).join('');
  return (
    shapeHeader +
    header +
    rowStrings(data)
      .map((line) => `${line}\n`)
      .join('')
  );
}

/** Where samples fall: shares in the training data, in the held-out data, in neither, and how many are distinct. */
export interface SampleProportions {
  /** Share of samples that are in the training data. */
  prop_train: number;
  /** Share of samples in the evaluation (held-out) data but not in the training data. */
  prop_data: number;
  /** Share of samples in neither. */
  prop_other: number;
  /** Number of distinct samples. */
  distinct: number;
}

/** Where the samples fall: in train, in the evaluation data but not train, or neither. */
export function sampleProportions(samples: string[], trainSet: Set<string>, dataSet: Set<string>): SampleProportions {
  let inTrain = 0;
  let inData = 0;
  for (const sample of samples) {
    if (trainSet.has(sample)) inTrain++;
    else if (dataSet.has(sample)) inData++;
  }
  const n = Math.max(samples.length, 1);
  return {
    prop_train: inTrain / n,
    prop_data: inData / n,
    prop_other: (samples.length - inTrain - inData) / n,
    distinct: new Set(samples).size,
  };
}

/** Data sets with at most this many distinct sequences get a per-sequence breakdown. */
export const PER_SEQUENCE_MAX = 32;

export interface SequenceBreakdown {
  sequence: string;
  /** Mean Monte-Carlo bound over the data rows equal to this sequence, bits. */
  bound_bits: number;
  /** Share of the samples equal to this sequence. */
  share: number;
}

/**
 * For a small data set (the heartbeat's phases, a held-out phase): each distinct data sequence with
 * its bound and the share of samples that are it — how evenly the model covers the data.
 * Undefined when there are more than PER_SEQUENCE_MAX distinct sequences.
 */
export function perSequenceBreakdown(dataLines: string[], boundPerSequence: ArrayLike<number>, samples: string[]): SequenceBreakdown[] | undefined {
  const rowsOf = new Map<string, number[]>();
  for (const [row, line] of dataLines.entries()) {
    const rows = rowsOf.get(line);
    if (rows) rows.push(row);
    else if (rowsOf.size === PER_SEQUENCE_MAX)
      return undefined; // one distinct sequence too many
    else rowsOf.set(line, [row]);
  }
  const sampleCounts = new Map<string, number>();
  for (const sample of samples) sampleCounts.set(sample, (sampleCounts.get(sample) ?? 0) + 1);
  return [...rowsOf].map(([sequence, rows]) => ({
    sequence,
    bound_bits: rows.reduce((sum, row) => sum + boundPerSequence[row], 0) / rows.length,
    share: (sampleCounts.get(sequence) ?? 0) / Math.max(samples.length, 1),
  }));
}
