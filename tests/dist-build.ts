// dist/ as `npm run build:ts` writes it, rebuilt when any file in src/ (or the build's scripts) is
// newer. Test files run in parallel processes: a lock folder keeps two from building at once.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const repository = resolve(import.meta.dirname, '..');

/** Newest modification time under a folder (files only). */
function newestMtime(folder: string): number {
  let newest = 0;
  for (const name of readdirSync(folder, { recursive: true }) as string[]) {
    const stats = statSync(join(folder, name));
    if (stats.isFile()) newest = Math.max(newest, stats.mtimeMs);
  }
  return newest;
}

function fresh(): boolean {
  const stamp = join(repository, 'dist', 'yargs-browser.js'); // written last by build:ts
  if (!existsSync(stamp)) return false;
  const sources = Math.max(newestMtime(join(repository, 'src')), statSync(join(repository, 'scripts', 'bundle-yargs-browser.mjs')).mtimeMs);
  return statSync(stamp).mtimeMs >= sources;
}

export async function ensureDist(): Promise<void> {
  const lock = join(repository, 'node_modules', '.dist-build-lock');
  for (;;) {
    if (fresh()) return;
    try {
      mkdirSync(lock);
    } catch {
      await new Promise((done) => setTimeout(done, 500)); // another test file is building
      continue;
    }
    try {
      if (!fresh()) await promisify(execFile)('npm', ['run', '--silent', 'build:ts'], { cwd: repository });
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
    if (!fresh()) throw new Error('npm run build:ts did not write dist/');
    return;
  }
}
