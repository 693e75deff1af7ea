// Data: the heartbeat generator (all P phases), data-file parsing and its error messages, formatting,
// validity and sample proportions.
import { describe, expect, it } from 'vitest';
import {
  formatSequences,
  fromStrings,
  heartbeatData,
  heartbeatPhaseOf,
  heartbeatPhases,
  heartbeatSequence,
  isHeartbeat,
  parseSequences,
  perSequenceBreakdown,
  PER_SEQUENCE_MAX,
  rowStrings,
  sampleProportions,
  sequenceSet,
} from '../src/data.js';
import { UserError } from '../src/errors.js';

function parseError(text: string): string {
  try {
    parseSequences(text, 'd.txt');
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('heartbeat data', () => {
  it('puts a 1 at phase, phase+P, ...', () => {
    expect(rowStrings({ length: 12, rows: 1, bits: heartbeatSequence(12, 5, 3) })).toEqual(['000100001000']);
    expect(rowStrings(heartbeatPhases(6, 3))).toEqual(['100100', '010010', '001001']);
  });

  it('uses every one of the P phases, equally often, when nothing is held out', () => {
    const { train, val, trainPhases, valPhases } = heartbeatData({ length: 20, period: 5, holdout: 0, count: 1000 });
    expect(train.rows).toBe(1000);
    expect(trainPhases).toEqual([0, 1, 2, 3, 4]);
    expect(valPhases).toEqual([0, 1, 2, 3, 4]);
    const counts = new Map<number, number>();
    for (const line of rowStrings(train)) counts.set(heartbeatPhaseOf(line, 5), (counts.get(heartbeatPhaseOf(line, 5)) ?? 0) + 1);
    expect([...counts.entries()].sort()).toEqual([
      [0, 200],
      [1, 200],
      [2, 200],
      [3, 200],
      [4, 200],
    ]);
    expect(rowStrings(val)).toEqual(rowStrings(heartbeatPhases(20, 5)));
  });

  it('holds the last K phases out of training and puts them in val', () => {
    const { train, val, trainPhases, valPhases } = heartbeatData({ length: 20, period: 5, holdout: 2, count: 7 });
    expect(trainPhases).toEqual([0, 1, 2]);
    expect(valPhases).toEqual([3, 4]);
    expect(rowStrings(train).map((line) => heartbeatPhaseOf(line, 5))).toEqual([0, 1, 2, 0, 1, 2, 0]);
    expect(rowStrings(val).map((line) => heartbeatPhaseOf(line, 5))).toEqual([3, 4]);
    for (const line of rowStrings(val)) expect(sequenceSet(train).has(line)).toBe(false);
  });

  it('rejects impossible specs', () => {
    expect(() => heartbeatData({ length: 4, period: 5, holdout: 0, count: 1 })).toThrow(RangeError);
    expect(() => heartbeatData({ length: 20, period: 5, holdout: 5, count: 1 })).toThrow(RangeError);
  });

  it('recognises valid heartbeats only', () => {
    expect(heartbeatPhaseOf('01000010000100001000', 5)).toBe(1);
    expect(isHeartbeat('00001000010000100001', 5)).toBe(true);
    expect(isHeartbeat('00000000000000000000', 5)).toBe(false);
    expect(isHeartbeat('01000010000100001001', 5)).toBe(false); // an extra 1
    expect(isHeartbeat('01000010000000001000', 5)).toBe(false); // a missing 1
    expect(isHeartbeat('00000100001000010000', 5)).toBe(false); // first 1 after the period
    expect(isHeartbeat('1001001', 3)).toBe(true); // length not a multiple of the period
  });
});

describe('data files', () => {
  it('parses lines of 0/1, tolerating blanks, comments, CRLF, BOM and surrounding whitespace', () => {
    const data = parseSequences('\uFEFF# comment\r\n0101\r\n\r\n  1100  \n\t# indented comment\n0011\t\n\n', 'd.txt');
    expect(data.length).toBe(4);
    expect(data.rows).toBe(3);
    expect(rowStrings(data)).toEqual(['0101', '1100', '0011']);
    expect([...data.bits]).toEqual([0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1]);
  });

  it('names the file, the line and the problem', () => {
    expect(parseError('0101\n01a1\n')).toBe("d.txt:2: unexpected character 'a' at column 3 (a sequence is a line of 0s and 1s)");
    expect(parseError('0101\n  01 1\n')).toBe('d.txt:2: unexpected character " " at column 5 (a sequence is a line of 0s and 1s)');
    expect(parseError('# c\n\n0101\n011\n')).toBe('d.txt:4: the sequence has 3 bits but line 3 has 4 (all sequences must have the same length)');
    expect(parseError('')).toBe('d.txt: no sequences (the file is empty or has only blank and comment lines)');
    expect(parseError('# only\n\n  \n')).toBe('d.txt: no sequences (the file is empty or has only blank and comment lines)');
    expect(parseError('0101\r\n0121\r\n')).toMatch(/^d\.txt:2: unexpected character '2' at column 3/);
  });

  it('formats what it parses', () => {
    const data = fromStrings(['0110', '1001']);
    const text = formatSequences(data, ['heartbeat L=4']);
    expect(text).toBe('# heartbeat L=4\n0110\n1001\n');
    expect(rowStrings(parseSequences(text, 'x'))).toEqual(['0110', '1001']);
  });
});

describe('sample proportions', () => {
  it('splits samples into train, data-not-train and other, and counts distinct ones', () => {
    const train = new Set(['00', '01']);
    const data = new Set(['01', '10']);
    const result = sampleProportions(['00', '00', '01', '10', '11', '11', '10', '00'], train, data);
    expect(result).toEqual({ prop_train: 4 / 8, prop_data: 2 / 8, prop_other: 2 / 8, distinct: 4 });
    expect(sampleProportions([], train, data)).toEqual({ prop_train: 0, prop_data: 0, prop_other: 0, distinct: 0 });
  });
});

describe('per-sequence breakdown', () => {
  it('gives each distinct data sequence its mean bound over its rows and its share of the samples', () => {
    const data = ['01', '10', '01'];
    const bounds = [1.0, 4.0, 2.0];
    const samples = ['01', '11', '01', '10', '01', '00', '01', '01'];
    expect(perSequenceBreakdown(data, bounds, samples)).toEqual([
      { sequence: '01', bound_bits: 1.5, share: 5 / 8 },
      { sequence: '10', bound_bits: 4.0, share: 1 / 8 },
    ]);
    expect(perSequenceBreakdown(['1'], [3], [])).toEqual([{ sequence: '1', bound_bits: 3, share: 0 }]);
  });

  it('is left out for data with more than PER_SEQUENCE_MAX distinct sequences', () => {
    const many = Array.from({ length: PER_SEQUENCE_MAX + 1 }, (_, k) => k.toString(2).padStart(8, '0'));
    expect(
      perSequenceBreakdown(
        many,
        many.map(() => 1),
        [],
      ),
    ).toBeUndefined();
    expect(
      perSequenceBreakdown(
        many.slice(1),
        many.slice(1).map(() => 1),
        [],
      ),
    ).toHaveLength(PER_SEQUENCE_MAX);
  });
});
