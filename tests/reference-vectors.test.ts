// The shared JSON test vectors (tests/vectors/*.json, from tests/vectors/generate.py's independent
// Python arithmetic; the same files crate/tests/vectors.rs checks) against the TypeScript reference.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { klFromLogit, klProbabilities, marginal, posterior } from '../src/reference/bernoulli.js';
import { Rng } from '../src/reference/rng.js';
import { makeSchedule, type ScheduleKind } from '../src/reference/schedule.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): any => JSON.parse(readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8'));
const close = (actual: number, expected: number, relative: number) => Math.abs(actual - expected) <= relative * Math.abs(expected) + 1e-280;

describe('reference against tests/vectors', () => {
  it('rng.json: seeding, next_u32, uniform_f32 and per-example streams, bit for bit', () => {
    const v = load('rng.json');
    for (const g of v.generators) {
      const seed = BigInt(g.seed);
      const rng = new Rng(seed);
      expect(rng.state(), `seed ${seed}`).toEqual(g.state);
      for (const e of g.next_u32) expect(rng.nextU32()).toBe(e);
      const again = new Rng(seed);
      for (const e of g.uniform_f32) expect(again.uniformF32()).toBe(e);
    }
    for (const s of v.for_example) {
      const rng = Rng.forExample(BigInt(s.seed), BigInt(s.step), BigInt(s.index));
      expect(rng.state(), `${s.seed}/${s.step}/${s.index}`).toEqual(s.state);
      for (const e of s.next_u32) expect(rng.nextU32()).toBe(e);
    }
    expect(v.generators.length + v.for_example.length).toBeGreaterThan(5);
  });

  it('schedule.json: b_t and c_t (paper exact, linear/cosine within 1e-12)', () => {
    let checked = 0;
    for (const s of load('schedule.json').schedules) {
      const schedule = makeSchedule(s.kind as ScheduleKind, s.T);
      const tolerance = s.kind === 'paper' ? 0 : 1e-12;
      s.t.forEach((t: number, i: number) => {
        if (t > 0) expect(close(schedule.b[t], s.b[i], tolerance), `${s.kind} T=${s.T} t=${t}: b ${schedule.b[t]} vs ${s.b[i]}`).toBe(true);
        expect(close(schedule.c[t], s.c[i], tolerance), `${s.kind} T=${s.T} t=${t}: c ${schedule.c[t]} vs ${s.c[i]}`).toBe(true);
        checked++;
      });
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('posterior.json: both halves of the posterior, and the marginal', () => {
    const v = load('posterior.json');
    for (const p of v.posterior) {
      const [q1, q0] = posterior(p.x0, p.xt, p.b, p.c_prev);
      expect(close(q1, p.q1, 1e-14) && close(q0, p.q0, 1e-14), `${JSON.stringify(p)}: got ${q1}, ${q0}`).toBe(true);
    }
    for (const m of v.marginal) expect(close(marginal(m.x0, m.c), m.p, 1e-15), JSON.stringify(m)).toBe(true);
  });

  it('kl.json: KL from probabilities and from logits', () => {
    const v = load('kl.json');
    for (const k of v.probability) {
      const got = klProbabilities(k.q, k.p);
      // 1 - q and 1 - p are rounded (~1e-16 absolute); that moves the second half by about |p - q|·1e-16
      const complementError = (4e-16 * Math.abs(k.p - k.q)) / Math.min(Math.max(1 - Math.max(k.q, k.p), 1e-300), 1);
      expect(Math.abs(got - k.kl_nats), `KL(${k.q} || ${k.p}) = ${got}, expected ${k.kl_nats}`).toBeLessThanOrEqual(
        1e-12 * k.kl_nats + complementError + 1e-280,
      );
    }
    for (const k of v.logit) {
      const got = klFromLogit(k.q, 1 - k.q, k.z);
      expect(Math.abs(got - k.kl_nats), `KL(${k.q} || sigmoid(${k.z})) = ${got}, expected ${k.kl_nats}`).toBeLessThanOrEqual(
        1e-12 * Math.abs(k.kl_nats) + 1e-15,
      );
    }
  });
});
