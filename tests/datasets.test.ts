// The rule-based data sets of bench/datasets.js (issue 6, target 4): every generated line obeys its
// rule, the splits are as designed, generation is deterministic, and scoreSamples counts right.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript module without type declarations
import { ruleDatasets, scoreSamples, writeDataset } from '../bench/datasets.js';

interface RuleDataset {
  name: string;
  length: number;
  description: string;
  rule(bits: string): boolean;
  train: string[];
  val: string[];
}

const datasets: RuleDataset[] = ruleDatasets();
const byName = (name: string) => {
  const dataset = datasets.find((d) => d.name === name);
  if (!dataset) throw new Error(`no data set ${name}`);
  return dataset;
};

/** Every bit string of length L, for brute-force counts of a rule's valid strings. */
function allStrings(length: number): string[] {
  return Array.from({ length: 2 ** length }, (_, value) => value.toString(2).padStart(length, '0'));
}

describe('rule data sets', () => {
  it('has 5 to 7 data sets of lengths 8 to 64, including a 64-bit one, with distinct names', () => {
    expect(datasets.length).toBeGreaterThanOrEqual(5);
    expect(datasets.length).toBeLessThanOrEqual(7);
    expect(new Set(datasets.map((d) => d.name)).size).toBe(datasets.length);
    for (const d of datasets) expect(d.length >= 8 && d.length <= 64).toBe(true);
    expect(datasets.some((d) => d.length === 64)).toBe(true);
  });

  it.each(datasets.map((d) => [d.name, d] as const))('%s: every train and val line has the length and obeys the rule', (_, d) => {
    expect(d.train.length).toBeGreaterThan(0);
    expect(d.val.length).toBeGreaterThan(0);
    for (const line of [...d.train, ...d.val]) {
      expect(line).toMatch(new RegExp(`^[01]{${d.length}}$`));
      expect(d.rule(line)).toBe(true);
    }
  });

  it.each(datasets.map((d) => [d.name, d] as const))('%s: no duplicates, and val is disjoint from train', (_, d) => {
    expect(new Set(d.train).size).toBe(d.train.length);
    expect(new Set(d.val).size).toBe(d.val.length);
    const train = new Set(d.train);
    expect(d.val.filter((line) => train.has(line))).toEqual([]);
  });

  it.each(datasets.map((d) => [d.name, d] as const))('%s: the rule rejects strings that break it', (_, d) => {
    // Flipping one bit of a valid string breaks every rule here (parity, weight, a single block, a
    // heartbeat, a palindrome's mirror pair, or... adjacent ones only when a neighbour is 1).
    const line = d.train[0];
    let rejected = 0;
    for (let i = 0; i < d.length; i++) {
      const flipped = line.slice(0, i) + (line[i] === '1' ? '0' : '1') + line.slice(i + 1);
      if (!d.rule(flipped)) rejected += 1;
    }
    expect(rejected).toBeGreaterThan(0);
    expect(d.rule(line.slice(1))).toBe(false); // wrong length
    expect(d.rule('2'.repeat(d.length))).toBe(false);
  });

  it('random splits cover every valid string exactly once, about 30% in train', () => {
    const expected: Record<string, number> = { parity12: 2048, weight3of16: 560, palindrome16: 256, noadjacent16: 2584 };
    for (const [name, count] of Object.entries(expected)) {
      const d = byName(name);
      const valid = allStrings(d.length).filter((bits) => d.rule(bits));
      expect(valid.length).toBe(count);
      expect([...d.train, ...d.val].sort()).toEqual(valid);
      expect(d.train.length).toBe(Math.round(0.3 * count));
    }
  });

  it('block4of32: train blocks start at 0..23, val blocks at 24..31', () => {
    const d = byName('block4of32');
    const startOf = (bits: string) => {
      for (let s = 0; s < 32; s++) if (bits[s] === '1' && bits[(s + 31) % 32] === '0') return s;
      return -1;
    };
    expect(d.train.map(startOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(d.val.map(startOf).sort((a, b) => a - b)).toEqual([24, 25, 26, 27, 28, 29, 30, 31]);
    expect(d.rule('1'.repeat(2) + '0'.repeat(28) + '1'.repeat(2))).toBe(true); // wraps around
    expect(d.rule('1'.repeat(4) + '0'.repeat(4) + '1' + '0'.repeat(23))).toBe(false); // five ones
    expect(d.rule('11011' + '0'.repeat(27))).toBe(false); // four ones, not contiguous
  });

  it('heartbeat24p6: phases 0..4 in train, phase 5 in val', () => {
    const d = byName('heartbeat24p6');
    expect(d.train.map((bits) => bits.indexOf('1')).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(d.val).toEqual(['000001'.repeat(4)]);
  });

  it('twobeats64: 24 train and 8 val phase pairs; every phase of each half occurs in train', () => {
    const d = byName('twobeats64');
    expect(d.train.length).toBe(24);
    expect(d.val.length).toBe(8);
    expect(new Set(d.train.map((bits) => bits.slice(0, 32))).size).toBe(4);
    expect(new Set(d.train.map((bits) => bits.slice(32))).size).toBe(8);
    // Halves recombined across pairs are valid too: the rule is the product of the two halves.
    expect(d.rule(d.val[0].slice(0, 32) + d.train[0].slice(32))).toBe(true);
  });

  it('is deterministic: two calls give the same splits', () => {
    const again: RuleDataset[] = ruleDatasets();
    for (let i = 0; i < datasets.length; i++) {
      expect(again[i].name).toBe(datasets[i].name);
      expect(again[i].train).toEqual(datasets[i].train);
      expect(again[i].val).toEqual(datasets[i].val);
    }
  });
});

describe('scoreSamples', () => {
  it('counts rule-obeying, novel and distinct samples on a hand-made list', () => {
    const d = byName('heartbeat24p6');
    const phase = (p: number) => Array.from({ length: 24 }, (_, i) => (i % 6 === p ? '1' : '0')).join('');
    const samples = [phase(0), phase(0), phase(3), phase(5), phase(5), '1'.repeat(24), '0'.repeat(24), '0'.repeat(23) + '1'];
    // 5 obey (phases 0, 0, 3, 5, 5); 2 are novel (phase 5 twice); 6 distinct strings.
    expect(scoreSamples(d, samples)).toEqual({ rule_share: 5 / 8, novel_rule_share: 2 / 8, distinct: 6 });
  });

  it('gives zeros for an empty list and full shares for val itself', () => {
    const d = byName('palindrome16');
    expect(scoreSamples(d, [])).toEqual({ rule_share: 0, novel_rule_share: 0, distinct: 0 });
    expect(scoreSamples(d, d.val)).toEqual({ rule_share: 1, novel_rule_share: 1, distinct: d.val.length });
    expect(scoreSamples(d, d.train)).toEqual({ rule_share: 1, novel_rule_share: 0, distinct: d.train.length });
  });
});

describe('writeDataset', () => {
  it('writes train.txt and val.txt, one sequence per line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rule-data-'));
    try {
      const d = byName('weight3of16');
      const paths = writeDataset(d, dir);
      expect(readFileSync(paths.train, 'utf8')).toBe(d.train.join('\n') + '\n');
      expect(readFileSync(paths.val, 'utf8').trim().split('\n')).toEqual(d.val);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
