// The command modules run in-process against in-memory files (MemoryIo), as the browser's command
// box will run them: no Node file system, output through the Io, user errors as UserError.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/commands/index.js';
import { MemoryIo } from '../src/commands/memory-io.js';
import { decodeSafetensors } from '../src/checkpoint.js';
import { parseSequences, rowStrings } from '../src/data.js';
import { UserError } from '../src/errors.js';
import '../src/node/wasm-file.js'; // the Node loader of the wasm core, as the CLI registers it

const root = resolve(import.meta.dirname, '..');
const modelMissing = ['src/model.ts', 'pkg/bernoulli_diffusion_core_bg.wasm'].filter((path) => !existsSync(join(root, path)));

async function userError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('MemoryIo paths and files', () => {
  it('resolves, joins and displays POSIX paths relative to its working folder', async () => {
    const io = new MemoryIo({ cwd: '/home/u', files: { 'd/a.txt': '01\n' } });
    expect(io.resolve('x/../y', './z')).toBe('/home/u/y/z');
    expect(io.resolve('/abs', 'q')).toBe('/abs/q');
    expect(io.join('a', 'b/../c')).toBe('a/c');
    expect(io.join('/a', 'b')).toBe('/a/b');
    expect(io.dirname('/a/b/c')).toBe('/a/b');
    expect(io.dirname('c')).toBe('.');
    expect(io.basename('/a/b/c.txt')).toBe('c.txt');
    expect(io.displayPath('/home/u/d/a.txt')).toBe('d/a.txt');
    expect(io.displayPath('/etc/x')).toBe('/etc/x');
    expect(await io.readText('d/a.txt')).toBe('01\n');
    expect(await io.exists('/home/u/d')).toBe(true);
    expect(await userError(io.readText('nope.txt'))).toBe('cannot read nope.txt: no such file or folder');
    expect(await userError(io.readText('d'))).toBe('cannot read d: is a folder, not a file');
    expect(await userError(io.writeAtomic('missing/x.txt', 'x'))).toBe('cannot write missing/x.txt: no such file or folder');
    await io.mkdir('e/f');
    await io.writeAtomic('e/f/g.txt', 'hi');
    expect(io.getText('/home/u/e/f/g.txt')).toBe('hi');
    expect(await userError(io.mkdir('e/f/g.txt/h'))).toMatch(/is a file/);
  });
});

describe('commands on in-memory files', () => {
  it('data heartbeat writes files into the Io and prints through it', async () => {
    const io = new MemoryIo();
    expect(await runCli(yargs, ['data', 'heartbeat', '--holdout', '2', '--count', '6', '--out', 'hb'], io)).toBe(0);
    expect(io.output).toEqual([
      'wrote hb/train.txt (6 sequences; heartbeat L=20 P=5, phases 0-2)',
      'wrote hb/val.txt (2 sequences; heartbeat L=20 P=5, phases 3-4)',
    ]);
    expect(rowStrings(parseSequences(io.getText('hb/val.txt')!, 'val'))).toEqual(['00010000100001000010', '00001000010000100001']);
  });

  it('help goes to the Io; a bad command line rejects with a UserError', async () => {
    const io = new MemoryIo();
    expect(await runCli(yargs, ['generate', '--help'], io)).toBe(0);
    expect(io.output.join('\n')).toMatch(/--given/);
    expect(await userError(runCli(yargs, ['generate'], new MemoryIo()))).toMatch(/Not enough non-option arguments/);
    expect(await userError(runCli(yargs, ['train', '--data', 'none.txt'], new MemoryIo()))).toBe('cannot read none.txt: no such file or folder');
    const bad = new MemoryIo({ files: { 'd.txt': '0101\n0110\n01\n' } });
    expect(await userError(runCli(yargs, ['train', '--data', 'd.txt'], bad))).toBe(
      'd.txt:3: the sequence has 2 bits but line 1 has 4 (all sequences must have the same length)',
    );
    expect([...bad.files.keys()]).toEqual(['/d.txt']); // nothing written
  });

  it.skipIf(modelMissing.length > 0)('train, generate and evaluate run in memory', async () => {
    const io = new MemoryIo({ files: { 'train.txt': '1010\n0101\n' } });
    const args = [
      'train',
      '--data',
      'train.txt',
      '--T',
      '6',
      '--steps',
      '12',
      '--batch-size',
      '4',
      '--eval-every',
      '6',
      '--early-stopping',
      '0',
      '--checkpoint-every',
      '6',
      '--name',
      'm',
      '--no-plots',
    ];
    expect(await runCli(yargs, args, io)).toBe(0);
    expect(io.output.at(-1)).toBe('run: results/m');
    const files = [...io.files.keys()].filter((path) => path.startsWith('/results/m/')).sort();
    expect(files).toEqual([
      '/results/m/checkpoints/step-12.safetensors',
      '/results/m/checkpoints/step-6.safetensors',
      '/results/m/config.yaml',
      '/results/m/metrics.jsonl',
      '/results/m/model.safetensors',
      '/results/m/results.json',
    ]);
    expect(JSON.parse(decodeSafetensors(io.files.get('/results/m/model.safetensors')!, 'model').metadata.loop_state).step).toBe(12);

    const generate = new MemoryIo({ files: { 'model.safetensors': io.files.get('/results/m/model.safetensors')! } });
    expect(await runCli(yargs, ['generate', 'model.safetensors', '-n', '3', '--given', '1??1', '--seed', '2'], generate)).toBe(0);
    expect(generate.output).toHaveLength(3);
    for (const line of generate.output) expect(line).toMatch(/^1[01]{2}1$/);
    const clamped = new MemoryIo({ files: { 'model.safetensors': io.files.get('/results/m/model.safetensors')! } });
    expect(await runCli(yargs, ['generate', 'model.safetensors', '-n', '3', '--given', '1??1', '--inpaint-mode', 'clamp', '--seed', '2'], clamped)).toBe(0);
    expect(clamped.output).toHaveLength(3);
    for (const line of clamped.output) expect(line).toMatch(/^1[01]{2}1$/);
    expect(await userError(runCli(yargs, ['generate', 'model.safetensors', '--given', '1??1', '--inpaint-mode', 'x'], clamped))).toBe(
      "--inpaint-mode: expected 'smc' or 'clamp', got 'x'",
    );

    const evaluate = new MemoryIo({ files: { 'model.safetensors': io.files.get('/results/m/model.safetensors')!, 'd.txt': '1010\n' } });
    expect(await runCli(yargs, ['evaluate', 'model.safetensors', '--data', 'd.txt', '--train', 'd.txt', '--samples', '5', '--exact', '--json'], evaluate)).toBe(
      0,
    );
    const result = JSON.parse(evaluate.output[0]);
    expect(result).toMatchObject({ n_data: 1, samples: 5, data: 'd.txt' });
    expect(typeof result.exact_nll_bits).toBe('number');
  });

  it.skipIf(modelMissing.length > 0)('an interrupt stops training with a checkpoint and exit code 130', async () => {
    let io: MemoryIo;
    io = new MemoryIo({
      onProgress: (update) => {
        if (update.step >= 5) io.interrupt();
      },
    });
    const code = await runCli(yargs, ['train', '--T', '6', '--steps', '100000', '--batch-size', '4', '--name', 'i', '--no-plots'], io);
    expect(code).toBe(130);
    const results = JSON.parse(io.getText('results/i/results.json')!);
    expect(results.stopped).toBe('interrupted');
    expect(io.files.has(`/results/i/checkpoints/step-${results.step}.safetensors`)).toBe(true);
    expect(io.output.at(-2)).toBe(
      `interrupted at step ${results.step}; continue with: bernoulli-diffusion train --resume results/i/checkpoints/step-${results.step}.safetensors`,
    );
  });
});
