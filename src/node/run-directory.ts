/**
 * Run directories on a real file system: created without Node's recursive mkdir (which busy-loops
 * for ever on paths such as /proc/foo), claimed by one `train` at a time with a lock file, and
 * cleaned of the temporaries of writes that were killed half-way.
 */
import { unlinkSync } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

/** The lock file inside a run directory while a `train` writes it; holds the process id. */
export const LOCK_FILE = '.lock';

/** Temporaries of writeFileAtomic: `.<name>.<pid>.<8 hex>.tmp`. */
const TEMPORARY = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/** An error whose `code` says what failed, for NodeIo's messages. */
function errorWithCode(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/**
 * mkdir -p, one level at a time: the missing folders from the first existing ancestor down. A
 * folder that cannot be created there fails at once (ENOENT from a parent that exists means the
 * file system does not allow it: EPERM).
 */
export async function makeDirectories(path: string): Promise<void> {
  const missing: string[] = [];
  for (let current = resolve(path); ; current = dirname(current)) {
    try {
      if (!(await stat(current)).isDirectory()) throw errorWithCode('ENOTDIR', `${current} is not a folder`);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      missing.push(current);
      if (dirname(current) === current) break;
    }
  }
  for (const folder of missing.reverse()) {
    try {
      await mkdir(folder);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      throw code === 'ENOENT' ? errorWithCode('EPERM', `cannot create ${folder}`) : error;
    }
  }
}

export interface RunDirectoryClaim {
  /** Temporaries of killed writes that were removed. */
  removedTemporaries: string[];
  release(): Promise<void>;
}

/** Why a claim failed: taken by a live process (or, with `create`, the folder existed already). */
export class RunDirectoryTaken extends Error {
  constructor(
    readonly runDir: string,
    readonly holder: number | undefined,
  ) {
    super(holder === undefined ? `${runDir} exists already` : `${runDir} is being written by process ${holder}`);
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** Removes writeFileAtomic's temporaries in `folder` (none can be live: the run directory is ours). */
async function removeTemporaries(folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names.filter((n) => TEMPORARY.test(n))) {
    try {
      await unlink(join(folder, name));
      removed.push(join(folder, name));
    } catch {
      // gone already, or not ours to remove: leave it
    }
  }
  return removed;
}

/**
 * Claims `runDir` for one `train`: `create` asks for an atomic creation of the folder itself (a
 * default, timestamped name: two runs started in the same second get different folders); then a
 * lock file made with O_EXCL holds this process's id. A lock left by a process that no longer
 * runs (kill -9) is taken over. Stale temporaries in the run directory and its checkpoints/ are
 * removed once the claim is held.
 */
export async function claimRunDirectory(runDir: string, options: { create: boolean }): Promise<RunDirectoryClaim> {
  await makeDirectories(dirname(runDir));
  if (options.create) {
    try {
      await mkdir(runDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new RunDirectoryTaken(runDir, undefined);
      throw error;
    }
  }
  await makeDirectories(join(runDir, 'checkpoints'));
  const lock = join(runDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(lock, 'wx', 0o644);
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const holder = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
      if (Number.isSafeInteger(holder) && holder !== process.pid && processIsAlive(holder)) throw new RunDirectoryTaken(runDir, holder);
      await unlink(lock).catch(() => {}); // left by a process that was killed
    }
  }
  // A second Ctrl-C exits at once (process.exit): the lock goes with it.
  const removeLock = () => {
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  };
  process.once('exit', removeLock);
  const removedTemporaries = [...(await removeTemporaries(runDir)), ...(await removeTemporaries(join(runDir, 'checkpoints')))];
  return {
    removedTemporaries,
    release: async () => {
      process.off('exit', removeLock);
      removeLock();
    },
  };
}
