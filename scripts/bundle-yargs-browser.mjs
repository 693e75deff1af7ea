// Rewrites dist/yargs-browser.js (tsc's output: an import of 'yargs/browser') as a self-contained
// bundle of yargs' browser build with its two unpkg.com imports pointed at the cliui and
// yargs-parser installed with yargs, so the package's browser CLI works offline with no alias.
// Runs after tsc (npm run build:ts).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const repository = fileURLToPath(new URL('..', import.meta.url));
const output = join(repository, 'dist', 'yargs-browser.js');
// cliui and yargs-parser as yargs itself resolves them (its own dependencies).
const yargsRoot = dirname(createRequire(join(repository, 'package.json')).resolve('yargs/package.json'));
const fromYargs = createRequire(join(yargsRoot, 'package.json'));
// (their package.json is not in their "exports": look through the folders Node would search)
const packageDir = (name) => {
  const dir = fromYargs.resolve
    .paths(name)
    .map((folder) => join(folder, name))
    .find((folder) => existsSync(join(folder, 'package.json')));
  if (!dir) throw new Error(`${name} (a dependency of yargs) is not installed`);
  return dir;
};
const cliui = join(packageDir('cliui'), 'index.mjs');
const parser = join(packageDir('yargs-parser'), 'browser.js');

const result = await build({
  configFile: false,
  root: repository,
  logLevel: 'warn',
  resolve: {
    alias: [
      { find: /^https:\/\/unpkg\.com\/cliui@[^/]+\/index\.mjs$/, replacement: cliui },
      { find: /^https:\/\/unpkg\.com\/yargs-parser@[^/]+\/browser\.js$/, replacement: parser },
    ],
  },
  build: {
    write: false,
    minify: false,
    target: 'es2022',
    lib: { entry: join(repository, 'src', 'yargs-browser.ts'), formats: ['es'], fileName: 'yargs-browser' },
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
});
const chunks = (Array.isArray(result) ? result : [result]).flatMap((r) => r.output).filter((o) => o.type === 'chunk');
if (chunks.length !== 1) throw new Error(`expected one chunk, got ${chunks.length}`);
const code = chunks[0].code;
if (/import\s*[^;]*from\s*["']https?:/.test(code)) throw new Error('the yargs browser bundle still imports from a URL');
// Their licences (MIT, ISC) ask for the copyright and permission notice in copies: all three, in full.
const notices = ['yargs', 'cliui', 'yargs-parser'].map((name) => {
  const dir = name === 'yargs' ? yargsRoot : packageDir(name);
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const file = ['LICENSE', 'LICENSE.txt', 'LICENSE.md'].map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`${name}: no LICENSE file`);
  const licence = readFileSync(file, 'utf8').trim().replace(/\*\//g, '* /');
  return `${name}@${version}:\n\n${licence}`;
});
writeFileSync(output, `/*!\nyargs' browser build and its helpers, bundled from npm.\n\n${notices.join('\n\n')}\n*/\n${code}`);
console.log(`bundle-yargs-browser: wrote ${output} (${code.length} bytes)`);
