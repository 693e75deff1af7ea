#!/usr/bin/env node
// The bernoulli-diffusion command. Runs the compiled CLI (dist/node/cli.js); in a source checkout
// without a build, or with BERNOULLI_DIFFUSION_FROM_SOURCE=1, runs src/node/cli.ts through tsx.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/node/cli.js', import.meta.url);
const source = new URL('../src/node/cli.ts', import.meta.url);

async function loadCli() {
  if (existsSync(compiled) && !process.env.BERNOULLI_DIFFUSION_FROM_SOURCE) return import(compiled.href);
  if (!existsSync(source)) throw new Error(`the CLI is not built: ${compiled.pathname} is missing (run npm run build)`);
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    throw new Error(`the CLI is not built (${compiled.pathname} is missing) and tsx is not installed to run it from source: run npm run build`);
  }
  register();
  return import(source.href);
}

try {
  const cli = await loadCli();
  process.exitCode = await cli.main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof Error && error.stack ? error.stack : String(error)}\n`);
  process.exitCode = 1;
}
