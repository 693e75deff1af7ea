/**
 * Seeded random numbers: xoshiro128** seeded through SplitMix64, bit for bit the same as the
 * Rust core's `crate/src/rng.rs` (the same seed gives the same draws in both languages).
 *
 * xoshiro128** needs only 32-bit operations (Math.imul, >>> 0). SplitMix64 needs 64-bit
 * arithmetic; it only runs when a generator is seeded, so BigInt is fast enough there.
 */

const MASK64 = (1n << 64n) - 1n;
const TWO_POW_MINUS_24 = 1 / 16_777_216;
const TWO_POW_MINUS_53 = 1 / 9_007_199_254_740_992;

/** A seed, step or index as an unsigned 64-bit BigInt (numbers must be non-negative safe integers). */
function toU64(value: number | bigint): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`expected a non-negative safe integer, got ${value}`);
    }
    return BigInt(value);
  }
  return value & MASK64;
}

/** SplitMix64: one 64-bit output per call; used to expand a seed into generator state. */
export class SplitMix64 {
  private state: bigint;

  constructor(seed: number | bigint) {
    this.state = toU64(seed);
  }

  nextU64(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
}

function rotl32(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** xoshiro128**: 128-bit state (four 32-bit words), 32-bit outputs. */
export class Rng {
  // The state words, kept as int32 values (the bit patterns of the Rust u32s).
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** State from a 64-bit seed: two SplitMix64 outputs, low word first. */
  constructor(seed: number | bigint) {
    const sm = new SplitMix64(seed);
    const a = sm.nextU64();
    const b = sm.nextU64();
    this.s0 = Number(a & 0xffffffffn) | 0;
    this.s1 = Number(a >> 32n) | 0;
    this.s2 = Number(b & 0xffffffffn) | 0;
    this.s3 = Number(b >> 32n) | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) {
      this.s0 = 1; // the all-zero state is the one fixed point of xoshiro
    }
  }

  /** The generator for example `index` of optimiser step `step` (independent of sharding). */
  static forExample(seed: number | bigint, step: number | bigint, index: number | bigint): Rng {
    const sm = new SplitMix64(toU64(seed) ^ 0xd1b54a32d192ed03n);
    const mixed = sm.nextU64() ^ ((toU64(step) * 0x9e3779b97f4a7c15n) & MASK64) ^ ((toU64(index) * 0xc2b2ae3d27d4eb4fn) & MASK64);
    return new Rng(new SplitMix64(mixed).nextU64());
  }

  static fromState(state: ArrayLike<number>): Rng {
    const rng = new Rng(0);
    rng.s0 = state[0] | 0;
    rng.s1 = state[1] | 0;
    rng.s2 = state[2] | 0;
    rng.s3 = state[3] | 0;
    return rng;
  }

  /** The four state words as unsigned 32-bit numbers. */
  state(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  nextU32(): number {
    const result = Math.imul(rotl32(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl32(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 random bits: u = (x >> 8) · 2^-24 (exactly an f32 value). */
  uniformF32(): number {
    return (this.nextU32() >>> 8) * TWO_POW_MINUS_24;
  }

  /** Uniform in [0, 1) with 53 random bits (two draws, high word first). */
  uniformF64(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67_108_864 + lo) * TWO_POW_MINUS_53;
  }

  /** B(u; p): true with probability p, compared at 24-bit resolution: u < p (p an f32 value). */
  bernoulli(p: number): boolean {
    return this.uniformF32() < p;
  }

  /** Uniform integer in [0, n) by Lemire's multiply-shift with rejection (unbiased), 0 < n < 2^32. */
  below(n: number): number {
    if (!(Number.isInteger(n) && n > 0 && n <= 0xffffffff)) {
      throw new RangeError(`below(n) needs an integer 0 < n < 2^32, got ${n}`);
    }
    let x = this.nextU32();
    let low = Math.imul(x, n) >>> 0; // the low 32 bits of the 64-bit product x·n
    if (low < n) {
      const threshold = (0x1_0000_0000 - n) % n; // (-n mod 2^32) mod n
      while (low < threshold) {
        x = this.nextU32();
        low = Math.imul(x, n) >>> 0;
      }
    }
    return mulHigh32(x, n);
  }

  /**
   * Standard normal by Box–Muller in f64 from two uniformF64 draws (the network initialisers'
   * `normal` in crate/src/network/common.rs; Math.log/Math.cos may differ from the crate's
   * deterministic ln/cos in the last bit).
   */
  normalF64(): number {
    const u1 = 1 - this.uniformF64(); // (0, 1]
    const u2 = this.uniformF64();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Standard normal rounded to f32 (Rng::normal). */
  normal(): number {
    return Math.fround(this.normalF64());
  }
}

/** The high 32 bits of x·n for 32-bit unsigned x and n, exactly (split x in 16-bit halves). */
function mulHigh32(x: number, n: number): number {
  const a = (x >>> 16) * n; // < 2^48, exact
  const b = (x & 0xffff) * n; // < 2^48, exact
  // x·n = a·2^16 + b; its high word = floor(a / 2^16) + floor(((a mod 2^16)·2^16 + b) / 2^32)
  return Math.floor(a / 65_536) + Math.floor(((a % 65_536) * 65_536 + b) / 4_294_967_296);
}
