/**
 * Per-bit Bernoulli quantities of the forward process (DESIGN.md §1), in f64: the marginal
 * q(x_t | x0), the normalised posterior q(x_{t-1} | x_t, x0) and the Bernoulli KL divergence,
 * finite and accurate near 0 and 1. Mirrors crate/src/bernoulli.rs function by function
 * (with Math.exp/Math.log in place of the crate's bit-reproducible `elementary` functions).
 *
 * Probabilities are "of the bit being 1" unless a pair (p1, p0) is passed; passing both halves
 * lets callers hand over 1 - p computed without cancellation.
 */

/** Bits per nat: log2(e). */
export const BITS_PER_NAT = Math.LOG2E;

/** q(x_t = 1 | x0) = x0 (1 - c_t) + c_t/2. */
export function marginal(x0: number, ct: number): number {
  return x0 * (1 - ct) + ct / 2;
}

/**
 * The posterior q(x_{t-1} | x_t, x0) per bit, WITH its normalisation, as [q1, q0]:
 *   a = x0 (1 - c_{t-1}) + c_{t-1}/2, l1 = q(x_t | x_{t-1}=1), l0 = q(x_t | x_{t-1}=0),
 *   q1 = a·l1 / (a·l1 + (1-a)·l0), q0 = (1-a)·l0 / (a·l1 + (1-a)·l0).
 * At t = 1 (c_0 = 0) this is x0 exactly.
 */
export function posterior(x0: number, xt: number, bt: number, cPrev: number): [number, number] {
  const a1 = x0 * (1 - cPrev) + cPrev / 2; // q(x_{t-1}=1 | x0)
  const a0 = (1 - x0) * (1 - cPrev) + cPrev / 2; // q(x_{t-1}=0 | x0) = 1 - a, without cancellation
  const l1 = xt * (1 - bt / 2) + (1 - xt) * (bt / 2); // q(x_t | x_{t-1}=1)
  const l0 = xt * (bt / 2) + (1 - xt) * (1 - bt / 2); // q(x_t | x_{t-1}=0)
  const joint1 = a1 * l1;
  const joint0 = a0 * l0;
  const normaliser = joint1 + joint0; // a·l1 + (1-a)·l0 = q(x_t | x0)
  return [joint1 / normaliser, joint0 / normaliser];
}

/** q1 ln q1 + q0 ln q0 (minus the entropy of B(q1), nats), with 0·ln 0 = 0. */
export function negativeEntropy(q1: number, q0: number): number {
  return (q1 > 0 ? q1 * Math.log(q1) : 0) + (q0 > 0 ? q0 * Math.log(q0) : 0);
}

/**
 * u·ln(u/v) - u + v >= 0: one half of the KL with its linear term (the linear terms of the two
 * halves cancel). With r = (u - v)/v it is v·Σ_{k>=2} (-r)^k/(k(k-1)), summed directly for
 * |r| < 1/8 (no cancellation when u ≈ v); 0·ln 0 = 0 gives v at u = 0.
 */
function klHalf(u: number, v: number): number {
  if (u === 0) return v;
  if (v === 0) return Infinity;
  const r = (u - v) / v;
  if (Math.abs(r) < 0.125) {
    // Σ_{j=0..18} (-r)^j / ((j+2)(j+1)), Horner from j = 18
    let s = 0;
    for (let j = 18; j >= 0; j--) s = s * -r + 1 / ((j + 2) * (j + 1));
    return v * (r * r) * s;
  }
  return u * Math.log(u / v) + (v - u);
}

/**
 * KL( B(q) || B(p) ) in nats from both halves: q1 ln(q1/p1) + q0 ln(q0/p0), as the sum of two
 * non-negative terms (see klHalf): >= 0, exactly 0 at p = q, accurate when p ≈ q.
 */
export function kl(q1: number, q0: number, p1: number, p0: number): number {
  return klHalf(q1, p1) + klHalf(q0, p0);
}

/** KL( B(q) || B(p) ) in nats for probabilities q, p of a 1. */
export function klProbabilities(q: number, p: number): number {
  return kl(q, 1 - q, p, 1 - p);
}

/**
 * Cross-entropy -q1 ln p1 - q0 ln p0 (nats) of B(q) against p1 = sigmoid(z), and p1, finite
 * for every finite z: with e = e^{-|z|}, z >= 0: CE = ln(1+e) + q0·z; z < 0: CE = ln(1+e) - q1·z.
 */
export function crossEntropyFromLogit(q1: number, q0: number, z: number): [number, number] {
  const e = Math.exp(-Math.abs(z));
  const logNormaliser = Math.log1p(e);
  if (z >= 0) return [logNormaliser + (q0 > 0 ? q0 * z : 0), 1 / (1 + e)];
  return [logNormaliser - (q1 > 0 ? q1 * z : 0), e / (1 + e)];
}

/** KL( B(q) || B(sigmoid(z)) ) in nats from the logit: negative entropy + CE, clamped at 0. dKL/dz = sigmoid(z) - q1. */
export function klFromLogit(q1: number, q0: number, z: number): number {
  return Math.max(0, negativeEntropy(q1, q0) + crossEntropyFromLogit(q1, q0, z)[0]);
}

/** sigmoid(z) = 1/(1 + e^{-z}), without overflow. */
export function sigmoid(z: number): number {
  const e = Math.exp(-Math.abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}
