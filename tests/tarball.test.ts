// The package as npm publishes it: `npm pack`, then
// - publint and @arethetypeswrong/cli (attw) on the tarball: no problems;
// - the tarball's contents: no source maps, no src/reference (the tests' oracle), a LICENSE;
// - installed (from npm's cache: --prefer-offline) into a fresh Node project: the README's "From
//   code" example type-checks with skipLibCheck: false and runs; require() and every entry load;
// - installed into a fresh vite app: the same example type-checks (bundler resolution) and builds
//   with no configuration, without vega/yaml-heavy code, and runs in headless Chromium.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveChromium, launchChromium, missingChromium, serveFolder } from './browser-helpers.js';
import { ensureDist, repository } from './dist-build.js';

const run = promisify(execFile);
const tsc = join(repository, 'node_modules', 'typescript', 'bin', 'tsc');
const bin = (name: string) => join(repository, 'node_modules', '.bin', name);

/** The first ```ts block of the README's "From code" section. */
function readmeExample(): string {
  const readme = readFileSync(join(repository, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## From code'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error('README.md: no ```ts block under "## From code"');
  return match[1];
}

/** What the example computed, as JSON (appended to the example in both apps). */
const report = 'JSON.stringify({ loss, samples: samples.length, filled: filled.length, boundBits, stderr, bytes: bytes.length })';

function checkOutcome(outcome: { loss: number; samples: number; filled: number; boundBits: number; stderr: number; bytes: number }): void {
  expect(Number.isFinite(outcome.loss)).toBe(true);
  expect(outcome.samples).toBe(10 * 20);
  expect(outcome.filled).toBe(4 * 20);
  expect(outcome.boundBits).toBeGreaterThan(0);
  expect(outcome.bytes).toBeGreaterThan(1000);
}

const npm = (args: string[], cwd: string) => run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, maxBuffer: 1 << 26 });

/** A fresh project with the tarball (and the given packages) installed from npm's cache where it can. */
async function freshProject(folder: string, tarball: string, manifest: object, extra: string[] = []): Promise<void> {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module', ...manifest }, null, 2));
  await npm(['install', '--prefer-offline', '--omit=optional', tarball, ...extra], folder);
}

let work: string;
let tarball: string;
let packed: { files: { path: string }[]; size: number; unpackedSize: number };

beforeAll(async () => {
  await ensureDist();
  work = mkdtempSync(join(tmpdir(), 'bd-tarball-'));
  const { stdout } = await npm(['pack', '--json', '--pack-destination', work], repository);
  packed = JSON.parse(stdout)[0];
  tarball = join(work, (packed as unknown as { filename: string }).filename);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('ships what it needs and nothing else', () => {
    const files = packed.files.map((f) => f.path);
    expect(files).toContain('LICENSE');
    expect(files).toContain('pkg/bernoulli_diffusion_core_bg.wasm');
    expect(files).toContain('pkg/bernoulli_diffusion_core_relaxed_bg.wasm');
    expect(files).toContain('dist/index.node.d.ts');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('dist/reference/'))).toEqual([]);
  });

  it('publint finds nothing to fix (warnings count)', async () => {
    const { stdout } = await run(bin('publint'), ['run', tarball, '--strict']);
    expect(stdout).toMatch(/All good!/);
  });

  it('@arethetypeswrong/cli: every entry resolves, with types, for Node ESM and bundlers', async () => {
    // --profile esm-only: the package is ES modules; require() works through Node's require(esm)
    // (checked below), which attw's node10/node16-from-CJS modes do not model. ./wasm and ./wasm-relaxed are files.
    // attw exits non-zero on any problem.
    const { stdout } = await run(bin('attw'), [tarball, '--profile', 'esm-only', '--exclude-entrypoints', 'wasm', 'wasm-relaxed', '--format', 'ascii'], {
      maxBuffer: 1 << 24,
    });
    expect(stdout).toContain('"bernoulli-diffusion/cli"');
    expect(stdout).not.toMatch(/^(node16 \(from ESM\)|bundler): (?!🟢)/m);
  });

  it('installs into a fresh Node project, where the README example type-checks and runs, and require() works', async () => {
    const app = join(work, 'node-app');
    await freshProject(app, tarball, {});
    writeFileSync(join(app, 'example.ts'), `${readmeExample()}\nconsole.log(${report});\n`);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(repository, 'node_modules', '@types')],
          outDir: 'out',
        },
        files: ['example.ts'],
      }),
    );
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((error) => {
      throw new Error(`tsc in the Node project:\n${error.stdout}${error.stderr}`);
    });
    const { stdout } = await run(process.execPath, [join(app, 'out', 'example.js')], { cwd: app });
    checkOutcome(JSON.parse(stdout));

    const required = await run(process.execPath, ['-e', "const m = require('bernoulli-diffusion'); console.log(typeof m.DiffusionModel, typeof m.init)"], {
      cwd: app,
    });
    expect(required.stdout.trim()).toBe('function function');
    const entries = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const [node, plots, cli] = await Promise.all(['node', 'plots', 'cli'].map((e) => import('bernoulli-diffusion/' + e)));
         console.log(JSON.stringify([typeof node.createNodePool, typeof plots.lossChartSpec, typeof cli.runCli, typeof cli.main]));`,
      ],
      { cwd: app },
    );
    expect(JSON.parse(entries.stdout)).toEqual(['function', 'function', 'function', 'function']);
  }, 300_000); // npm install: seconds on an idle machine, minutes on a busy one

  it(`installs into a fresh vite app, where the README example type-checks, builds with no configuration and runs${haveChromium ? '' : ` (not run in a browser — ${missingChromium})`}`, async () => {
    const app = join(work, 'vite-app');
    await freshProject(app, tarball, {});
    writeFileSync(
      join(app, 'index.html'),
      '<!doctype html><html><body><p id="result">running…</p><script type="module" src="./main.ts"></script></body></html>\n',
    );
    writeFileSync(join(app, 'main.ts'), `${readmeExample()}\ndocument.getElementById('result')!.textContent = ${report};\nexport {};\n`);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'Bundler',
          lib: ['ES2022', 'DOM'],
          strict: true,
          skipLibCheck: false,
          types: [],
          noEmit: true,
        },
        files: ['main.ts'],
      }),
    );
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((error) => {
      throw new Error(`tsc in the vite app:\n${error.stdout}${error.stderr}`);
    });
    // A second page runs the CLI with the package's offline yargs (built separately, so that the
    // first page's bundle is that of a DiffusionModel-only app).
    writeFileSync(
      join(app, 'cli.html'),
      '<!doctype html><html><body><pre id="result">running…</pre><script type="module" src="./cli.ts"></script></body></html>\n',
    );
    writeFileSync(
      join(app, 'cli.ts'),
      "import { browserYargs, MemoryIo, runCli } from 'bernoulli-diffusion/cli';\n" +
        'const lines: string[] = [];\n' +
        "const code = await runCli(browserYargs, ['data', 'heartbeat', '--out', 'hb'], new MemoryIo({ onPrint: (line) => lines.push(line), onNote: (line) => lines.push(line) }));\n" +
        "document.getElementById('result')!.textContent = JSON.stringify({ code, lines });\nexport {};\n",
    );
    const output = join(app, 'dist');
    const cliOutput = join(app, 'dist-cli');
    const settings = { target: 'es2022', rolldownOptions: { checks: { bundlerTimings: false } } } as const;
    await build({ configFile: false, root: app, logLevel: 'warn', build: { ...settings, outDir: output } });
    await build({
      configFile: false,
      root: app,
      logLevel: 'warn',
      build: { ...settings, outDir: cliOutput, rolldownOptions: { ...settings.rolldownOptions, input: join(app, 'cli.html') } },
    });
    const cliCode = readdirSync(join(cliOutput, 'assets'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(cliOutput, 'assets', f), 'utf8'))
      .join('\n');
    expect(cliCode).not.toMatch(/(from|import\()\s*["']https?:/);
    const assets = readdirSync(join(output, 'assets'));
    const code = assets
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(output, 'assets', f), 'utf8'))
      .join('\n');
    // the two builds of the core (src/wasm.ts); the page fetches one of them
    expect(assets.filter((f) => f.endsWith('.wasm'))).toHaveLength(2);
    expect(code).not.toMatch(/vega|resvg|unpkg\.com/);
    expect(code.length).toBeLessThan(150_000); // the core: model, wasm glue, yaml (was 645 KB with vega)

    if (!haveChromium) return;
    const server = await serveFolder(output);
    const { browser, close } = await launchChromium({ width: 800, height: 600 });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(`${server.origin}/`);
      await page.waitForFunction(() => document.getElementById('result')!.textContent !== 'running…', null, { timeout: 120_000 });
      expect(problems).toEqual([]);
      checkOutcome(JSON.parse((await page.textContent('#result'))!));
    } finally {
      await close();
      await server.close();
    }
    // The CLI page, with the browser offline (this machine has no CDN access either).
    const cliServer = await serveFolder(cliOutput);
    const cliBrowser = await launchChromium({ width: 800, height: 600 });
    try {
      const page = await cliBrowser.browser.newPage();
      await page.route(/^https?:\/\/(?!127\.0\.0\.1)/, (route) => route.abort());
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(`${cliServer.origin}/cli.html`);
      await page.waitForFunction(() => document.getElementById('result')!.textContent !== 'running…', null, { timeout: 30_000 });
      expect(problems).toEqual([]);
      const { code, lines } = JSON.parse((await page.textContent('#result'))!);
      expect(code).toBe(0);
      expect(lines.join('\n')).toMatch(/hb/);
    } finally {
      await cliBrowser.close();
      await cliServer.close();
    }
  }, 300_000);
});
