// Issue 16, "smaller rough edges", and regressions of inputs that already failed cleanly: plot
// on a bad metrics.jsonl, --config pointed at a data or binary file, bad data and bad YAML. Each:
// exit 2, one short line naming the file (and line), nothing written.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, filesUnder, QUICK, runMain, skipReason, workDir } from './helpers.js';

describe.skipIf(skipReason !== '')('rough edges', () => {
  let work: string;
  let runDir: string;
  beforeAll(async () => {
    work = workDir('edges');
    const trained = await runMain(work, ['train', '--config', 'tiny.yaml', '--steps', '10', '--name', 'p', ...QUICK]);
    expect(trained.status, trained.stderr).toBe(0);
    runDir = join(work, 'results', 'p');
  });

  it('plot on a bad metrics.jsonl: one line with file and line, before any picture is written', async () => {
    const metrics = join(runDir, 'metrics.jsonl');
    const good = readFileSync(metrics, 'utf8');
    const lines = good.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const cases: [string, RegExp][] = [
      [JSON.stringify({ ...JSON.parse(lines[1]), grid: 'not a grid' }), /metrics\.jsonl:2: "grid" must be a list of 0\/1 strings$/],
      [JSON.stringify({ ...JSON.parse(lines[1]), prop_train: 'half' }), /metrics\.jsonl:2: "prop_train" must be a number, got "half"$/],
      ['{"step": 10, "loss": ', /metrics\.jsonl:2: not valid JSON$/],
    ];
    const before = filesUnder(runDir);
    for (const [line, pattern] of cases) {
      writeFileSync(metrics, [lines[0], line, ...lines.slice(2)].join('\n') + '\n');
      expectOneLineError(await runMain(work, ['plot', runDir]), 2, pattern);
      expect(filesUnder(runDir)).toEqual(before);
    }
    writeFileSync(metrics, good);
  });

  it('--config pointed at a data file or a checkpoint: a short line, not the file echoed', async () => {
    writeFileSync(join(work, 'data.txt'), `${Array.from({ length: 2000 }, (_, i) => (i % 3 === 0 ? '01010101' : '11110000')).join('\n')}\n`);
    const line = expectOneLineError(
      await runMain(work, ['train', '--config', 'data.txt', '--out', 'never', ...QUICK]),
      2,
      /^error: data\.txt:1: the file: expected a mapping of keys, got the text "0101.*…" \(\d+ characters\)$/,
    );
    expect(line.length).toBeLessThan(160);
    const binary = expectOneLineError(
      await runMain(work, ['train', '--config', join(runDir, 'model.safetensors'), '--out', 'never', ...QUICK]),
      2,
      /^error: .*model\.safetensors/,
    );
    expect(binary.length).toBeLessThan(200);
    expect(filesUnder(join(work, 'never'))).toEqual([]);
  });

  it('regressions: bad data and bad YAML still fail with one line naming file and line', async () => {
    writeFileSync(join(work, 'bad.txt'), '0101\n01x1\n');
    writeFileSync(join(work, 'bad.yaml'), 'model: [1,\n');
    writeFileSync(join(work, 'typo.yaml'), 'training:\n  lr: 10\n  weight_decay: 11\n');
    expectOneLineError(
      await runMain(work, ['train', '--data', 'bad.txt', '--out', 'never', ...QUICK]),
      2,
      /^error: bad\.txt:2: unexpected character 'x' at column 3/,
    );
    expectOneLineError(await runMain(work, ['train', '--config', 'bad.yaml', '--out', 'never', ...QUICK]), 2, /^error: bad\.yaml:\d+: YAML syntax error/);
    expectOneLineError(
      await runMain(work, ['train', '--config', 'typo.yaml', '--out', 'never', ...QUICK]),
      2,
      /^error: typo\.yaml:3: training\.weight_decay: out of range/,
    );
    expect(filesUnder(join(work, 'never'))).toEqual([]);
  });
});
