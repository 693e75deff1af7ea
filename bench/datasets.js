/**
 * Rule-based binary data sets for judging generalisation (issue 6, target 4).
 *
 * Each data set is a set of fixed-length bit strings defined by a rule, split into train and val so
 * that val holds strings the model never saw: either a random share of all valid strings (parity,
 * weight, palindromes, no-adjacent-ones) or a structured hold-out (block positions, a heartbeat
 * phase, combinations of two phases). A model that memorises train gives val a large bound and
 * produces only train strings; a model that learned the rule does neither.
 *
 *   import { ruleDatasets, scoreSamples, writeDataset } from './bench/datasets.js';
 *
 * Plain ESM JavaScript without dependencies; everything is generated from a fixed seed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SEED = 20261128;

/** mulberry32: a tiny seeded PRNG giving floats in [0, 1). */
function makeRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates shuffle of a copy. */
function shuffled(items, random) {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Every bit string of length L (L <= 20), in counting order. */
function allStrings(length) {
  const out = [];
  for (let value = 0; value < 2 ** length; value++) out.push(value.toString(2).padStart(length, '0'));
  return out;
}

/** A random `trainShare` of `valid` goes to train, the rest to val (both sorted). */
function randomSplit(valid, trainShare, random) {
  const order = shuffled(valid, random);
  const trainCount = Math.round(valid.length * trainShare);
  return { train: order.slice(0, trainCount).sort(), val: order.slice(trainCount).sort() };
}

const countOnes = (bits) => bits.split('').filter((bit) => bit === '1').length;

/** L bits with a 1 at every position i where i % period === phase. */
function heartbeat(length, period, phase) {
  let bits = '';
  for (let i = 0; i < length; i++) bits += i % period === phase ? '1' : '0';
  return bits;
}

/** Phase of a heartbeat of this period, or -1 if `bits` is not one. */
function heartbeatPhase(bits, period) {
  for (let phase = 0; phase < period; phase++) if (bits === heartbeat(bits.length, period, phase)) return phase;
  return -1;
}

/** L bits, zero except a cyclic block of `width` ones starting at `start`. */
function cyclicBlock(length, width, start) {
  const bits = Array(length).fill('0');
  for (let k = 0; k < width; k++) bits[(start + k) % length] = '1';
  return bits.join('');
}

/** Start of the one cyclic block of `width` ones in `bits`, or -1 if there is no such single block. */
function cyclicBlockStart(bits, width) {
  if (countOnes(bits) !== width) return -1;
  for (let start = 0; start < bits.length; start++) if (bits === cyclicBlock(bits.length, width, start)) return start;
  return -1;
}

function parity12(random) {
  const length = 12;
  const rule = (bits) => bits.length === length && /^[01]*$/.test(bits) && countOnes(bits) % 2 === 0;
  return {
    name: 'parity12',
    length,
    description: 'even number of ones, L=12 (2048 strings); train a random 30%, val the other 70%',
    rule,
    ...randomSplit(allStrings(length).filter(rule), 0.3, random),
  };
}

function weight16(random) {
  const length = 16;
  const ones = 3;
  const rule = (bits) => bits.length === length && /^[01]*$/.test(bits) && countOnes(bits) === ones;
  return {
    name: 'weight3of16',
    length,
    description: 'exactly 3 ones, L=16 (560 strings); train a random 30%, val the other 70%',
    rule,
    ...randomSplit(allStrings(length).filter(rule), 0.3, random),
  };
}

function block32() {
  const length = 32;
  const width = 4;
  const heldOut = (start) => start >= 24; // val: the block starts at 24..31 (a contiguous range of positions)
  const rule = (bits) => bits.length === length && cyclicBlockStart(bits, width) >= 0;
  const starts = Array.from({ length }, (_, start) => start);
  return {
    name: 'block4of32',
    length,
    description: 'one cyclic block of 4 ones, L=32 (32 strings); train starts 0..23, val starts 24..31 (shift)',
    rule,
    train: starts.filter((start) => !heldOut(start)).map((start) => cyclicBlock(length, width, start)),
    val: starts.filter(heldOut).map((start) => cyclicBlock(length, width, start)),
  };
}

function heartbeat24() {
  const length = 24;
  const period = 6;
  const heldOutPhase = 5;
  const rule = (bits) => bits.length === length && heartbeatPhase(bits, period) >= 0;
  const phases = Array.from({ length: period }, (_, phase) => phase);
  return {
    name: 'heartbeat24p6',
    length,
    description: 'a 1 every 6 bits, L=24 (6 phases); train phases 0..4, val phase 5',
    rule,
    train: phases.filter((phase) => phase !== heldOutPhase).map((phase) => heartbeat(length, period, phase)),
    val: [heartbeat(length, period, heldOutPhase)],
  };
}

function palindrome16(random) {
  const length = 16;
  const rule = (bits) => bits.length === length && /^[01]*$/.test(bits) && bits === bits.split('').reverse().join('');
  const valid = allStrings(length / 2).map((half) => half + half.split('').reverse().join(''));
  return {
    name: 'palindrome16',
    length,
    description: 'palindromes, L=16 (256 strings); train a random 30%, val the other 70%',
    rule,
    ...randomSplit(valid, 0.3, random),
  };
}

function noAdjacent16(random) {
  const length = 16;
  const rule = (bits) => bits.length === length && /^[01]*$/.test(bits) && !bits.includes('11');
  return {
    name: 'noadjacent16',
    length,
    description: 'no two adjacent ones, L=16 (2584 strings); train a random 30%, val the other 70%',
    rule,
    ...randomSplit(allStrings(length).filter(rule), 0.3, random),
  };
}

function twoHeartbeats64() {
  const length = 64;
  const half = 32;
  // First half: a 1 every 4 bits (phase a of 4); second half: a 1 every 8 bits (phase b of 8).
  const make = (a, b) => heartbeat(half, 4, a) + heartbeat(half, 8, b);
  const heldOut = (a, b) => (a + b) % 4 === 0; // 8 of the 32 pairs; every a and every b still occur in train
  const rule = (bits) => bits.length === length && heartbeatPhase(bits.slice(0, half), 4) >= 0 && heartbeatPhase(bits.slice(half), 8) >= 0;
  const train = [];
  const val = [];
  for (let a = 0; a < 4; a++) for (let b = 0; b < 8; b++) (heldOut(a, b) ? val : train).push(make(a, b));
  return {
    name: 'twobeats64',
    length,
    description: 'L=64: first 32 bits a 1 every 4, last 32 a 1 every 8 (32 phase pairs); val 8 unseen pairs',
    rule,
    train,
    val,
  };
}

/** The rule-based data sets, the same on every call. */
export function ruleDatasets() {
  const random = makeRandom(SEED);
  return [parity12(random), weight16(random), block32(), heartbeat24(), palindrome16(random), noAdjacent16(random), twoHeartbeats64()];
}

/**
 * How samples (strings of 0/1) fare on a data set: the share obeying the rule, the share obeying it
 * without being a train string, and the number of distinct samples.
 */
export function scoreSamples(dataset, samples) {
  const train = new Set(dataset.train);
  let obeying = 0;
  let novel = 0;
  for (const sample of samples) {
    if (!dataset.rule(sample)) continue;
    obeying += 1;
    if (!train.has(sample)) novel += 1;
  }
  const n = samples.length;
  return {
    rule_share: n > 0 ? obeying / n : 0,
    novel_rule_share: n > 0 ? novel / n : 0,
    distinct: new Set(samples).size,
  };
}

/** Writes dir/train.txt and dir/val.txt (one sequence per line) for the CLI; returns their paths. */
export function writeDataset(dataset, dir) {
  mkdirSync(dir, { recursive: true });
  const trainPath = join(dir, 'train.txt');
  const valPath = join(dir, 'val.txt');
  writeFileSync(trainPath, dataset.train.join('\n') + '\n');
  writeFileSync(valPath, dataset.val.join('\n') + '\n');
  return { train: trainPath, val: valPath };
}
