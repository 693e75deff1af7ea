// The plain-TypeScript RNG (src/reference/rng.ts) against the Rust core's xoshiro128** / SplitMix64.
import { describe, expect, it } from 'vitest';
import { Rng, SplitMix64 } from '../src/reference/rng.js';

describe('reference RNG', () => {
  it('SplitMix64 reproduces the published outputs for seed 1234567', () => {
    const sm = new SplitMix64(1234567);
    const expected = [6457827717110365317n, 3203168211198807973n, 9817491932198370423n, 4593380528125082431n, 16408922859458223821n];
    for (const e of expected) expect(sm.nextU64()).toBe(e);
  });

  it('xoshiro128** reproduces the reference outputs for state {1, 2, 3, 4}', () => {
    const rng = Rng.fromState([1, 2, 3, 4]);
    for (const e of [11520, 0, 5927040, 70819200, 2031721883, 1637235492]) expect(rng.nextU32()).toBe(e);
  });

  // Values from an independent Python transcription of crate/src/rng.rs (arbitrary-precision ints).
  it('seeding, per-example streams, below() and uniforms match the algorithm', () => {
    const draw = (rng: Rng, n: number, f: (r: Rng) => number) => Array.from({ length: n }, () => f(rng));
    const u32 = (r: Rng) => r.nextU32();
    expect(draw(new Rng(42), 8, u32)).toEqual([1776835114, 4165204688, 17111135, 2317295270, 2792088233, 2554630222, 2940343271, 2244566231]);
    expect(draw(new Rng(0), 4, u32)).toEqual([3737715805, 2584255861, 2876756834, 3286328325]);
    expect(draw(new Rng(2n ** 64n - 1n), 4, u32)).toEqual([477689756, 2493998634, 555695776, 607808419]);
    const example = Rng.forExample(7, 3, 11);
    expect(example.state()).toEqual([2164463478, 1570826509, 2857276295, 2943058864]);
    expect(draw(example, 4, u32)).toEqual([2759567418, 3727337329, 3851184079, 811151301]);
    expect(Rng.forExample(12345678901234567890n, 2n ** 40n + 5n, 999999).state()).toEqual([3008237536, 444078357, 1280283609, 1198313461]);
    expect(draw(new Rng(9), 10, (r) => r.below(5))).toEqual([2, 2, 4, 1, 3, 4, 4, 4, 3, 0]);
    expect(draw(new Rng(9), 10, (r) => r.below(3_000_000_000))).toEqual([
      1228057770, 2413518169, 909987588, 1870677328, 2705195166, 2497833640, 2245512153, 233226881, 1154246571, 1822918159,
    ]);
    expect(draw(new Rng(1), 4, (r) => r.uniformF32())).toEqual([0.3946724534034729, 0.3313447833061218, 0.14775007963180542, 0.24871611595153809]);
  });

  it('uniformF32 values are exact f32 numbers in [0, 1)', () => {
    const rng = new Rng(5);
    for (let i = 0; i < 1000; i++) {
      const u = rng.uniformF32();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      expect(Math.fround(u)).toBe(u);
    }
  });

  it('below(n) stays in range and is roughly uniform', () => {
    const rng = new Rng(7);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 50_000; i++) counts[rng.below(5)]++;
    for (const c of counts) {
      expect(c).toBeGreaterThan(9_500);
      expect(c).toBeLessThan(10_500);
    }
  });

  it('normal() has mean 0 and variance 1 (to sampling error)', () => {
    const rng = new Rng(3);
    let sum = 0;
    let sumSquares = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      sum += z;
      sumSquares += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.015); // 5 standard errors
    expect(Math.abs(sumSquares / n - 1)).toBeLessThan(0.025);
  });
});
