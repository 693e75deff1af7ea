// The public API as committed in docs/api-report.md: regenerated from the entries in package.json
// "exports" (scripts/api-report.mjs) it must be unchanged, so a change to the public surface shows
// up in review; and every exported name and public class member carries a doc comment.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error a plain .mjs script without type declarations
import { apiReport, reportPath } from '../scripts/api-report.mjs';

describe('the API report', () => {
  const { text, problems, names } = apiReport() as { text: string; problems: string[]; names: number };

  it('docs/api-report.md is current (regenerate: node scripts/api-report.mjs --write)', () => {
    expect(readFileSync(reportPath as string, 'utf8')).toBe(text);
  });

  it('documents every exported name and public member', () => {
    expect(problems).toEqual([]);
  });

  it('would notice an undocumented or added export: the core lists DiffusionModel but none of the pool plumbing', () => {
    expect(names).toBeGreaterThan(50);
    const core = text.slice(text.indexOf('## `bernoulli-diffusion` (browser'), text.indexOf('## `bernoulli-diffusion` (node'));
    expect(core).toContain('- class `DiffusionModel`');
    expect(core).not.toMatch(/computeGradientInPlace|gradientScratchView|setPendingObservations|boundTotals|sampleRange/);
    expect(core).not.toMatch(/ModelReplica|flagsLayer|FLAG_KEYS/);
  });
});
