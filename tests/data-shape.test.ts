// The data file's shape header (`# shape: 28x28`): parsed with the rows, every malformed or
// inconsistent header a one-line UserError naming file and line, written back by formatSequences.
import { describe, expect, it } from 'vitest';
import { formatSequences, formatShape, fromStrings, parseSequences, parseShape, rowStrings } from '../src/data.js';
import { UserError } from '../src/errors.js';

function parseError(text: string): string {
  try {
    parseSequences(text, 'img.txt');
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('shape header', () => {
  it('gives plain files the 1-D shape [L]', () => {
    expect(parseSequences('0101\n1100\n', 'd.txt').shape).toEqual([4]);
  });

  it('reads H x W before the first row, after a BOM, blank and comment lines', () => {
    const data = parseSequences('\uFEFF\n# two 2x3 images\n  # shape: 2x3  \r\n101010\r\n111000\r\n', 'img.txt');
    expect(data.shape).toEqual([2, 3]);
    expect(data.length).toBe(6);
    expect(rowStrings(data)).toEqual(['101010', '111000']);
  });

  it('reads a 1-D header and the spelling variants', () => {
    expect(parseSequences('# shape: 4\n0101\n', 'd').shape).toEqual([4]);
    expect(parseSequences('#shape:2 x 2\n0101\n', 'd').shape).toEqual([2, 2]);
    expect(parseSequences('# Shape: 1X4\n0101\n', 'd').shape).toEqual([1, 4]);
    // A comment that only mentions a shape is an ordinary comment.
    expect(parseSequences('# shape of the data below\n0101\n', 'd').shape).toEqual([4]);
  });

  it('rejects malformed headers, naming file and line', () => {
    expect(parseError('# ok\n# shape: 28x\n0101\n')).toMatch(/^img\.txt:2: malformed shape header "# shape: 28x"/);
    expect(parseError('# shape: 0x4\n0000\n')).toMatch(/^img\.txt:1: malformed shape header/);
    expect(parseError('# shape: 2x2x1\n0000\n')).toMatch(/^img\.txt:1: malformed shape header/);
    expect(parseError('# shape: -4\n0000\n')).toMatch(/^img\.txt:1: malformed shape header/);
    expect(parseError('# shape:\n0000\n')).toMatch(/^img\.txt:1: malformed shape header/);
    expect(parseError('# shape: 2.5x2\n0000\n')).toMatch(/^img\.txt:1: malformed shape header/);
  });

  it('rejects a product that is not the row length, at the first row', () => {
    expect(parseError('# shape: 28x28\n\n0101\n')).toBe(
      'img.txt:3: the sequence has 4 bits but the shape 28x28 of line 1 has 784 (the product of the shape must equal the row length)',
    );
    expect(parseError('# shape: 5\n0101\n')).toMatch(/^img\.txt:2: the sequence has 4 bits but the shape 5 of line 1 has 5/);
  });

  it('rejects a second header and a header after the rows', () => {
    expect(parseError('# shape: 2x2\n# shape: 1x4\n0101\n')).toMatch(/^img\.txt:2: a second shape header \(line 1 already gives the shape 2x2\)/);
    expect(parseError('0101\n# shape: 2x2\n0101\n')).toMatch(/^img\.txt:2: the shape header must come before the first sequence \(line 1\)/);
  });

  it('writes a 2-D shape as the first line and reads it back; 1-D data gets no header', () => {
    const image = { ...fromStrings(['110100', '001011']), shape: [2, 3] };
    const text = formatSequences(image, ['two images']);
    expect(text).toBe('# shape: 2x3\n# two images\n110100\n001011\n');
    const back = parseSequences(text, 'x');
    expect(back.shape).toEqual([2, 3]);
    expect(back.bits).toEqual(image.bits);
    expect(formatSequences({ ...fromStrings(['01']), shape: [2] })).toBe('01\n');
    expect(formatSequences(fromStrings(['01']))).toBe('01\n');
    expect(() => formatSequences({ ...fromStrings(['01']), shape: [3] })).toThrow(/shape 3 does not have 2 bits/);
  });

  it('parses and formats shape text', () => {
    expect(parseShape('28x28')).toEqual([28, 28]);
    expect(parseShape(' 20 ')).toEqual([20]);
    expect(parseShape('28x')).toBeUndefined();
    expect(parseShape('x28')).toBeUndefined();
    expect(parseShape('')).toBeUndefined();
    expect(formatShape([28, 28])).toBe('28x28');
  });
});
