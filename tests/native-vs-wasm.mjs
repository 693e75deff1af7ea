// The wasm half of crate/tests/native_vs_wasm.rs (run by `cargo test`): reads scenarios (JSON) on
// stdin, runs each with the built wasm core in pkg/ (RawModel, summariseBound) and prints what it
// computed as JSON on stdout, every number as the hex of its IEEE bits, so the Rust test can
// compare it with the native build exactly. Errors thrown by the core are printed as {name, message}.
import { readFileSync } from 'node:fs';

const pkg = new URL('../pkg/', import.meta.url);
const glue = await import(new URL('bernoulli_diffusion_core.js', pkg).href);
glue.initSync({ module: readFileSync(new URL('bernoulli_diffusion_core_bg.wasm', pkg)) });
const { RawModel, summariseBound } = glue;

const hex64 = (values) =>
  Array.from(values, (v) => {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, v);
    return view.getBigUint64(0).toString(16).padStart(16, '0');
  });
const hex32 = (values) => Array.from(new Uint32Array(Float32Array.from(values).buffer), (b) => b.toString(16).padStart(8, '0'));
const bits = (text) => Uint8Array.from(text, (c) => Number(c));
const text = (array) => Array.from(array).join('');
const thrown = (call) => {
  try {
    call();
    return null;
  } catch (error) {
    return { name: error.name, message: error.message };
  }
};

const scenarios = JSON.parse(readFileSync(0, 'utf8'));
const results = scenarios.map((s) => {
  const model = new RawModel(JSON.stringify(s.model), JSON.stringify(s.training), BigInt(s.seed));
  const reports = s.batches.map((batch) => hex64(model.trainStep(bits(batch), batch.length / s.model.length)));
  const shard = bits(s.shard);
  const lossSum = model.computeGradient(shard, shard.length / s.model.length, BigInt(s.shard_offset), model.step);
  const gradient = hex32(model.lastGradient());
  const samples = text(model.sample(s.samples, BigInt(s.sample_seed), s.record_every));
  const frames = text(model.lastFrames());
  const inpainted = s.inpaint_modes.map(([mode, particles]) =>
    text(model.inpaint(bits(s.pattern), s.samples, BigInt(s.sample_seed), mode, particles ?? undefined)),
  );
  // a strided chain of 3 network calls (x0 models only): samples, then 2-particle SMC completions
  const strided =
    s.model.parameterisation === 'x0'
      ? text(model.sample(s.samples, BigInt(s.sample_seed), 0, 3)) + text(model.inpaint(bits(s.pattern), s.samples, BigInt(s.sample_seed), 'smc', 2, 3))
      : '';
  const data = bits(s.data);
  const rows = data.length / s.model.length;
  const bound = hex64(model.evaluateBound(data, rows, s.repeats, 0, BigInt(s.bound_seed)));
  const totals = model.boundTotals(data, rows, s.repeats, 0, BigInt(s.bound_seed), 0n);
  const stratified = hex64(model.boundTotals(data, rows, s.repeats, s.strata, BigInt(s.bound_seed), 0n));
  const summary = hex64(summariseBound(totals, rows, s.repeats));
  const result = {
    reports,
    loss_sum: hex64([lossSum])[0],
    gradient,
    parameters: hex32(model.parameters()),
    samples,
    frames,
    inpainted,
    strided,
    bound,
    summary,
    stratified,
    state: model.stateJson(),
    errors: {
      missing_field: thrown(() => new RawModel(JSON.stringify(s.model), JSON.stringify({ ...s.training, min_lr_ratio: undefined }), 1n)),
      bad_pattern: thrown(() => model.inpaint(Uint8Array.of(3), 1, 0n, undefined, undefined)),
      gradient_length: thrown(() => model.applyGradient(new Float32Array(3), 0, 1)),
      summary_length: thrown(() => summariseBound(new Float64Array(3), 2, 2)),
    },
  };
  model.free();
  return result;
});
process.stdout.write(JSON.stringify(results));
