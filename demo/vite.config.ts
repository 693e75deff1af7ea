/**
 * The demo's vite config. `bernoulli-diffusion` (and its /plots and /cli entries) is imported as a
 * user would write it; here it resolves to the package source (src/*.ts), so the demo always shows
 * the current code and the dev server reloads on edits (tests/browser-bundle.test.ts and
 * tests/tarball.test.ts build apps against the package's published files, through its "exports").
 *
 * In the source, the CLI's browser yargs (src/yargs-browser.ts) is yargs' own browser build, which
 * imports its two helpers from unpkg.com; the published dist/yargs-browser.js bundles them, and
 * here those two imports are pointed at the copies installed with yargs, so the page works offline.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { demoMnistPlugin } from './mnist-subset.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repository = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: here,
  base: './', // the built files work from any folder of a static server
  plugins: [demoMnistPlugin()],
  resolve: {
    alias: [
      { find: /^bernoulli-diffusion$/, replacement: `${repository}src/index.ts` },
      { find: /^bernoulli-diffusion\/(plots|cli)$/, replacement: `${repository}src/$1.ts` },
      { find: /^https:\/\/unpkg\.com\/cliui@[^/]+\/index\.mjs$/, replacement: 'cliui' },
      { find: /^https:\/\/unpkg\.com\/yargs-parser@[^/]+\/browser\.js$/, replacement: 'yargs-parser/browser' },
    ],
  },
  worker: { format: 'es' },
  server: { fs: { allow: [repository] } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // vega and vega-lite are large; the page loads them once.
    chunkSizeWarningLimit: 2500,
    // No "this build was slow" notes: vega's modules take a few seconds to transform, that is all.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
});
