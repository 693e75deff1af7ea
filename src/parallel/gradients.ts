/**
 * Summing the shards' gradients in one fixed order, so that every replica computes the same
 * f32 values bit for bit (browser-safe).
 *
 * out[i] = (((g_0[i] + g_1[i]) + g_2[i]) + ...): each addition is done in f64 and stored into a
 * Float32Array, which rounds it to f32. Rounding the exact f64 sum of two f32 values to f32 is
 * the correctly rounded f32 addition (53 >= 2·24 + 2 bits, so the double rounding is harmless),
 * so this equals the f32 arithmetic of the core, on every engine. `outHolds`: the index in `parts`
 * of the values `out` already holds (its own shard), if any. `add` adds one part into `out`
 * (default: a JavaScript loop; a replica passes the vectorised wasm addition, `wasmAdder`).
 */
export function sumShards(out: Float32Array, parts: Float32Array[], outHolds?: number, add: (out: Float32Array, part: Float32Array) => void = addInto): void {
  if (parts.length === 0) throw new Error('no gradients to sum');
  for (const part of parts) {
    if (part.length !== out.length) throw new Error(`gradient of ${part.length} values, expected ${out.length}`);
  }
  // f32 addition is commutative, so when `out` already holds part 0 or part 1 (`outHolds`), the
  // first sum starts from it: (g_0 + g_1) either way, one pass fewer.
  let k = 1;
  if (parts.length > 1 && (outHolds === 0 || outHolds === 1)) {
    add(out, parts[1 - outHolds]);
    k = 2;
  } else if (outHolds !== 0) {
    out.set(parts[0]);
  }
  for (; k < parts.length; k++) add(out, parts[k]);
}

/** out[i] += part[i] with f32 rounding (the default adder of `sumShards`). */
export function addInto(out: Float32Array, part: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] += part[i];
}

/** n items cut into `shards` contiguous ranges whose sizes differ by at most one (larger first). */
export function splitEvenly(n: number, shards: number): { start: number; count: number }[] {
  const base = Math.floor(n / shards);
  const extra = n % shards;
  const ranges: { start: number; count: number }[] = [];
  let start = 0;
  for (let k = 0; k < shards; k++) {
    const count = base + (k < extra ? 1 : 0);
    ranges.push({ start, count });
    start += count;
  }
  return ranges;
}

/**
 * An adder for `sumShards` into a model's gradient buffer: the part is copied into the model's
 * scratch buffer and added there in wasm (f32x4 additions; the same results as `addInto`).
 */
export function wasmAdder(model: { gradientScratchView(): Float32Array; addScratchToGradient(): void }): (out: Float32Array, part: Float32Array) => void {
  const scratch = model.gradientScratchView();
  return (_, part) => {
    scratch.set(part);
    model.addScratchToGradient();
  };
}
