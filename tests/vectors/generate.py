#!/usr/bin/env python3
"""Writes the JSON test vectors in this folder, computed independently of the Rust and
TypeScript code: integer arithmetic for the RNG, exact fractions for the schedules and
posteriors, and 60-digit decimal arithmetic for logarithms (KL). Read by `cargo test`
(crate/tests/vectors.rs) and by vitest.

Run: python3 tests/vectors/generate.py   (no dependencies beyond the standard library)
"""
import json
import math
import os
from decimal import Decimal, getcontext
from fractions import Fraction

getcontext().prec = 60
HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


# ---------------------------------------------------------------- rng
def splitmix64(state):
    """Returns (new_state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl32(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


class Xoshiro128ss:
    def __init__(self, seed):
        state, a = splitmix64(seed & M64)
        state, b = splitmix64(state)
        self.s = [a & M32, a >> 32, b & M32, b >> 32]
        if self.s == [0, 0, 0, 0]:
            self.s[0] = 1

    @staticmethod
    def for_example(seed, step, index):
        _, first = splitmix64((seed ^ 0xD1B54A32D192ED03) & M64)
        mixed = first ^ ((step * 0x9E3779B97F4A7C15) & M64) ^ ((index * 0xC2B2AE3D27D4EB4F) & M64)
        _, derived = splitmix64(mixed)
        return Xoshiro128ss(derived)

    def next_u32(self):
        s = self.s
        result = (rotl32((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl32(s[3], 11)
        return result

    def uniform_f32(self):
        return (self.next_u32() >> 8) / 16777216.0


def rng_vectors():
    seeds = [0, 1, 42, 2015, M64]
    generators = []
    for seed in seeds:
        g = Xoshiro128ss(seed)
        state = list(g.s)
        next_u32 = [g.next_u32() for _ in range(8)]
        g2 = Xoshiro128ss(seed)
        uniform_f32 = [g2.uniform_f32() for _ in range(4)]
        generators.append({"seed": str(seed), "state": state, "next_u32": next_u32, "uniform_f32": uniform_f32})
    streams = []
    for seed, step, index in [(0, 0, 0), (1, 0, 1), (1, 1, 0), (42, 7, 1234), (2015, M64 - 1, 3), (5, M64 - 16, 2)]:
        g = Xoshiro128ss.for_example(seed, step, index)
        state = list(g.s)
        streams.append({"seed": str(seed), "step": str(step), "index": str(index), "state": state,
                        "next_u32": [g.next_u32() for _ in range(4)]})
    return {"about": "xoshiro128** seeded by SplitMix64; u64 values as decimal strings", "generators": generators, "for_example": streams}


# ---------------------------------------------------------------- schedules
def paper_schedule(T):
    b = [Fraction(0)] + [Fraction(1, T - t + 1) for t in range(1, T + 1)]
    c = [Fraction(t, T) for t in range(T + 1)]
    return [float(x) for x in b], [float(x) for x in c]


def product_c(b):
    """c_t = 1 - prod_{s<=t} (1 - b_s), in f64 exactly as documented (left-to-right product)."""
    c = [0.0]
    kept = 1.0
    for t in range(1, len(b)):
        kept *= 1.0 - b[t]
        c.append(1.0 - kept)
    return c


def linear_schedule(T):
    first = min(0.1 / T, 1.0)
    end = min(20.0 / T, 1.0)
    b = [0.0]
    for t in range(1, T):
        fraction = (t - 1) / (T - 2) if T > 2 else 0.0
        b.append(min(first + (end - first) * fraction, 1.0))
    b.append(1.0)
    return b, product_c(b)


def cosine_schedule(T, s=0.008):
    def kept(t):
        angle = math.pi / 2 * (t / T + s) / (1 + s)
        return math.cos(angle) ** 2
    b = [0.0] + [1.0 - kept(t) / kept(t - 1) for t in range(1, T)] + [1.0]
    return b, product_c(b)


def schedule_vectors():
    out = []
    for name, make in [("paper", paper_schedule), ("linear", linear_schedule), ("cosine", cosine_schedule)]:
        b, c = make(10)
        out.append({"kind": name, "T": 10, "t": list(range(0, 11)), "b": b, "c": c})
        b, c = make(2000)
        ts = [0, 1, 2, 3, 100, 500, 1000, 1500, 1999, 2000]
        out.append({"kind": name, "T": 2000, "t": ts, "b": [b[t] for t in ts], "c": [c[t] for t in ts]})
    return {"about": "b[i], c[i] at step t[i] (b_0 = 0 by convention); paper exact, linear/cosine "
                     "c by the f64 product (compare with a 1e-12 tolerance)", "schedules": out}


# ---------------------------------------------------------------- posterior and marginal
def posterior_exact(x0, xt, b, c_prev):
    x0, xt, b, c_prev = map(Fraction, (x0, xt, b, c_prev))
    a1 = x0 * (1 - c_prev) + c_prev / 2
    l1 = xt * (1 - b / 2) + (1 - xt) * b / 2
    l0 = xt * b / 2 + (1 - xt) * (1 - b / 2)
    joint1, joint0 = a1 * l1, (1 - a1) * l0
    return joint1 / (joint1 + joint0), joint0 / (joint1 + joint0)


def posterior_vectors():
    points = []
    for b in [1e-6, 0.001, 1 / 2000, 1 / 3, 0.5, 0.9, 1.0]:
        for c_prev in [0.0, 1e-9, 0.0005, 0.25, 0.6, 0.999, 1.0]:
            for x0 in (0, 1):
                for xt in (0, 1):
                    q1, q0 = posterior_exact(x0, xt, b, c_prev)
                    points.append({"x0": x0, "xt": xt, "b": b, "c_prev": c_prev, "q1": float(q1), "q0": float(q0)})
    marginals = []
    for c in [0.0, 1e-9, 0.001, 0.3, 0.5, 0.999999, 1.0]:
        for x0 in (0, 1):
            p = Fraction(x0) * (1 - Fraction(c)) + Fraction(c) / 2
            marginals.append({"x0": x0, "c": c, "p": float(p)})
    return {"about": "q(x_{t-1}=1 | x_t, x0) = q1, = 0: q0 (exact fractions, rounded once); "
                     "marginal q(x_t=1 | x0) = x0(1-c) + c/2", "posterior": points, "marginal": marginals}


# ---------------------------------------------------------------- KL
def dec_ln(x):
    return Decimal(x).ln()


def kl_decimal(q, p):
    """KL(B(q) || B(p)) in nats with 60-digit logarithms; q, p given as floats (exact binary values)."""
    q, p = Decimal(q), Decimal(p)
    total = Decimal(0)
    for u, v in ((q, p), (1 - q, 1 - p)):
        if u != 0:
            total += u * (u.ln() - v.ln())
    return total


def kl_logit_decimal(q, z):
    """KL(B(q) || B(sigmoid(z))): ln p = -ln(1 + e^-z), ln(1-p) = -z - ln(1 + e^-z)."""
    q, z = Decimal(q), Decimal(z)
    ln_p = -(1 + (-z).exp()).ln()
    ln_1mp = -z + ln_p
    total = Decimal(0)
    if q != 0:
        total += q * (q.ln() - ln_p)
    if q != 1:
        total += (1 - q) * ((1 - q).ln() - ln_1mp)
    return total


def kl_vectors():
    probability_points = []
    values = [1e-300, 1e-12, 1e-6, 0.01, 0.2, 0.5, 0.77, 0.999, 1 - 1e-9]
    for q in [0.0, 1.0] + values:
        for p in values:
            probability_points.append({"q": q, "p": p, "kl_nats": float(kl_decimal(q, p))})
    # p very close to q: the KL is second order, d²/(2q(1-q))
    for q in [1e-8, 0.3, 0.5, 0.9]:
        p = q + q * 1e-7
        probability_points.append({"q": q, "p": p, "kl_nats": float(kl_decimal(q, p))})
    logit_points = []
    for q in [0.0, 1e-9, 0.25, 0.5, 0.9, 1.0]:
        for z in [-700.0, -30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0, 700.0]:
            logit_points.append({"q": q, "z": z, "kl_nats": float(kl_logit_decimal(q, z))})
    return {"about": "KL(B(q) || B(p)) in nats with 60-digit arithmetic; logit form p = sigmoid(z). "
                     "1 bit = ln 2 nats.", "probability": probability_points, "logit": logit_points}


def write(name, data):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write("rng.json", rng_vectors())
    write("schedule.json", schedule_vectors())
    write("posterior.json", posterior_vectors())
    write("kl.json", kl_vectors())
    print("wrote rng.json, schedule.json, posterior.json, kl.json")
