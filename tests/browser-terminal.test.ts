// The demo's command box without a browser (demo/src/terminal.ts): lines split as a shell splits
// them, the progress bar's text, and typed lines run through the shared yargs commands on the
// package's in-memory Io, with errors printed as the Node CLI prints them.
import yargs from 'yargs';
import { describe, expect, it, vi } from 'vitest';
import { progressBarLine, runCommandLine, splitCommandLine } from '../demo/src/terminal.js';
import { coreModelConfig, coreTrainingConfig, DEFAULTS, DiffusionModel, parseSequences, rowStrings } from '../src/index.node.js';
import { MemoryIo } from '../src/commands/memory-io.js';

// The demo imports the package by name; here, as in the demo's vite config, that is the source.
vi.mock('bernoulli-diffusion', () => import('../src/index.js'));
// (its /cli entry without browserYargs, whose source form is yargs/browser: CDN imports, not for Node)
vi.mock('bernoulli-diffusion/cli', async () => ({ ...(await import('../src/commands/index.js')), ...(await import('../src/commands/memory-io.js')) }));

describe('splitCommandLine', () => {
  it('splits as a POSIX shell does for simple cases', () => {
    expect(splitCommandLine('  generate  m.safetensors -n 8 ')).toEqual(['generate', 'm.safetensors', '-n', '8']);
    expect(splitCommandLine("generate m --given '1?0??'")).toEqual(['generate', 'm', '--given', '1?0??']);
    expect(splitCommandLine('train --name "my run" --out a\\ b')).toEqual(['train', '--name', 'my run', '--out', 'a b']);
    expect(splitCommandLine('x "say \\"hi\\" \\\\" \'\' y')).toEqual(['x', 'say "hi" \\', '', 'y']);
    expect(splitCommandLine('pre"fix"\'ed\'')).toEqual(['prefixed']);
    expect(splitCommandLine('\'a "b" \\c\'')).toEqual(['a "b" \\c']); // nothing is special inside '…'
    expect(splitCommandLine('')).toEqual([]);
  });

  it('rejects an unclosed quote', () => {
    expect(() => splitCommandLine("generate --given '1?0")).toThrow("unclosed quote (') in the command line");
    expect(() => splitCommandLine('train --name "a')).toThrow('unclosed quote (") in the command line');
  });
});

describe('progressBarLine', () => {
  it('fills the bar in proportion to the steps done', () => {
    const line = progressBarLine({ step: 120, total: 300, loss: 3.12345, lr: 0.001, stepsPerSecond: 210, etaSeconds: 0.9 });
    expect(line).toBe(` ${'\u2588'.repeat(12)}${'\u2591'.repeat(18)} 40% | step 120/300 | loss 3.123 bits/seq | 210.0 steps/s | ETA 1s`);
    expect(progressBarLine({ step: 300, total: 300, loss: Number.NaN, lr: 0, stepsPerSecond: 0, etaSeconds: 3700 })).toBe(
      ` ${'\u2588'.repeat(30)} 100% | step 300/300 | loss - bits/seq | 0.0 steps/s | ETA 1h01m`,
    );
  });
});

function memoryIo(files: Record<string, string | Uint8Array> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io = new MemoryIo({ files, onPrint: (line) => out.push(line), onNote: (line) => err.push(line) });
  return { io, out, err };
}

describe('runCommandLine', () => {
  it('runs `data heartbeat`, with or without the program name in front', async () => {
    for (const prefix of ['', 'bernoulli-diffusion ']) {
      const { io, out, err } = memoryIo();
      expect(await runCommandLine(yargs, `${prefix}data heartbeat --length 8 --period 4 --holdout 1 --out 'hb data'`, io)).toBe(0);
      expect(out).toEqual([
        'wrote hb data/train.txt (1000 sequences; heartbeat L=8 P=4, phases 0-2)',
        'wrote hb data/val.txt (1 sequence; heartbeat L=8 P=4, phase 3)',
      ]);
      expect(err).toEqual([]);
      expect(parseSequences(io.getText('hb data/val.txt')!, 'val.txt').bits).toEqual(Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 1));
    }
  });

  it('runs `generate` on an in-memory checkpoint: the model samples for that seed, and --given keeps the fixed bits', async () => {
    const model = await DiffusionModel.create(
      coreModelConfig({ ...DEFAULTS.model, T: 10, hidden: 16 }, 6),
      coreTrainingConfig({ ...DEFAULTS.training, warmup_steps: 0 }, 10),
      1,
    );
    const { io, out } = memoryIo({ 'm.safetensors': model.toBytes() });
    expect(await runCommandLine(yargs, 'generate m.safetensors -n 4 --seed 5', io)).toBe(0);
    expect(out).toEqual(rowStrings({ length: 6, rows: 4, bits: model.sample(4, { seed: 5 }).samples }));
    out.length = 0;
    expect(await runCommandLine(yargs, "generate m.safetensors -n 3 --given '1?0??1'", io)).toBe(0);
    expect(out).toHaveLength(3);
    for (const line of out) expect(line).toMatch(/^1[01]0[01]{2}1$/);
    model.free();
  });

  it('prints a user mistake as one "error: …" line with exit code 2, and a bug as an internal error with 1', async () => {
    const missing = memoryIo();
    expect(await runCommandLine(yargs, 'generate nowhere.safetensors', missing.io)).toBe(2);
    expect(missing.err).toEqual(['error: cannot read nowhere.safetensors: no such file or folder']);
    const quote = memoryIo();
    expect(await runCommandLine(yargs, "generate m --given '1?", quote.io)).toBe(2);
    expect(quote.err).toEqual(["error: unclosed quote (') in the command line"]);
    const unknown = memoryIo();
    expect(await runCommandLine(yargs, 'frobnicate', unknown.io)).toBe(2);
    expect(unknown.err).toHaveLength(1);
    expect(unknown.err[0]).toMatch(/^error: /);

    const broken = memoryIo({ 'm.safetensors': Uint8Array.of(1) });
    broken.io.readBytes = async () => {
      throw new TypeError('disk on fire');
    };
    expect(await runCommandLine(yargs, 'generate m.safetensors', broken.io)).toBe(1);
    expect(broken.err).toEqual(['internal error: disk on fire']);
  });
});
