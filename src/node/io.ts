/**
 * The Node `Io`: real files with atomic writes (temporary file, fsync, rename, fsync of the
 * folder), stdout/stderr, progress on the terminal, and Ctrl-C as an abort signal.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, type FileHandle, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { totalmem } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { DecodedImage, Io, ParallelIo, ProgressDisplay, RunDirectoryClaim, RunPictureRenderer } from '../commands/io.js';
import { UserError } from '../errors.js';
import { availableCores, createNodePool } from './pool.js';
import { createProgress } from './progress.js';
import { claimRunDirectory, LOCK_FILE, makeDirectories, RunDirectoryTaken } from './run-directory.js';

/**
 * Test hook (tests/cli.test.ts): half-way through writing a file whose path contains this text,
 * say so on stderr and wait for SIGUSR2 before going on (or be killed there).
 */
const PAUSE_WRITE_ENV = 'BERNOULLI_DIFFUSION_TEST_PAUSE_WRITE';

function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or folder';
    case 'EISDIR':
      return 'is a folder, not a file';
    case 'ENOTDIR':
      return 'a part of the path is not a folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EFBIG':
      return 'the file is larger than this process may write (ulimit -f)';
    case 'EDQUOT':
      return 'the disk quota is used up';
    case 'EROFS':
      return 'read-only file system';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    await handle.sync();
  } catch {
    // Some platforms cannot open or fsync a folder; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

/**
 * Writes all of `bytes` at `position` on: FileHandle.write may write fewer bytes than asked (a disk
 * filling up writes what fits), so loop until done; a write that makes no progress is a full disk.
 */
export async function writeAll(handle: Pick<FileHandle, 'write'>, bytes: Uint8Array, from: number, to: number): Promise<void> {
  for (let at = from; at < to; ) {
    const { bytesWritten } = await handle.write(bytes, at, to - at, at);
    if (bytesWritten <= 0) throw Object.assign(new Error('no space left on the device'), { code: 'ENOSPC' });
    at += bytesWritten;
  }
}

/**
 * Writes `data` to `path` atomically: a temporary file beside it, every byte written, fsync, rename
 * over, fsync the folder. On any failure the temporary is removed and `path` keeps its old content
 * (or stays absent); a process killed mid-write leaves only the temporary (`.<name>.<pid>.<hex>.tmp`,
 * removed when a train claims the run directory again).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const folder = dirname(path);
  const temporary = join(folder, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', 0o644);
  try {
    let written = 0;
    const pauseAt = process.env[PAUSE_WRITE_ENV];
    if (pauseAt && path.includes(pauseAt)) {
      written = Math.floor(bytes.length / 2);
      await writeAll(handle, bytes, 0, written);
      await handle.sync();
      const resume = new Promise((resolve) => process.once('SIGUSR2', resolve));
      process.stderr.write(`paused writing ${path} after ${written} of ${bytes.length} bytes\n`);
      const keepAlive = setInterval(() => {}, 1 << 30); // a signal listener alone does not keep Node running
      await resume;
      clearInterval(keepAlive);
    }
    await writeAll(handle, bytes, written, bytes.length);
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => {}); // closed already after a failed rename: ignored
    await unlink(temporary).catch(() => {});
    throw error;
  }
  await fsyncDirectory(folder);
}

/** Options of `NodeIo`. */
export interface NodeIoOptions {
  /** Draws pictures (src/plots); default: loaded on first use. */
  renderRunPictures?: RunPictureRenderer;
}

const loadPlotRenderer: RunPictureRenderer = async (inputs, write) => {
  const { renderRunPictures } = await import('./plots.js');
  return renderRunPictures(inputs, write);
};

/** The CLI's `Io` on Node: files on disk (atomic writes), the terminal, worker threads and pictures. */
export class NodeIo implements Io {
  private controller: AbortController | undefined;
  readonly renderRunPictures: RunPictureRenderer;
  readonly parallel: ParallelIo = {
    cores: availableCores,
    createPool: (local, workers) => createNodePool({ local, workers }),
  };

  constructor(options: NodeIoOptions = {}) {
    this.renderRunPictures = options.renderRunPictures ?? loadPlotRenderer;
  }

  async readText(path: string): Promise<string> {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      throw new UserError(`cannot read ${this.displayPath(path)}: ${fileProblem(error)}`);
    }
  }

  async readBytes(path: string): Promise<Uint8Array> {
    try {
      const buffer = await readFile(path);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      throw new UserError(`cannot read ${this.displayPath(path)}: ${fileProblem(error)}`);
    }
  }

  async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    try {
      await writeFileAtomic(path, data);
    } catch (error) {
      throw new UserError(`cannot write ${this.displayPath(path)}: ${fileProblem(error)}`);
    }
  }

  async exists(path: string): Promise<boolean> {
    try {
      await access(path, constants.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  async mkdir(path: string): Promise<void> {
    try {
      await makeDirectories(path);
    } catch (error) {
      throw new UserError(`cannot create the folder ${this.displayPath(path)}: ${fileProblem(error)}`);
    }
  }

  packageFolder(name: string): string | undefined {
    try {
      return dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
    } catch {
      return undefined;
    }
  }

  async list(folder: string): Promise<string[]> {
    try {
      return await readdir(folder);
    } catch (error) {
      throw new UserError(`cannot read the folder ${this.displayPath(folder)}: ${fileProblem(error)}`);
    }
  }

  /** PNG decoding by pngjs (loaded on first use; 16-bit channels are scaled to 8 bits, palettes expanded). */
  async decodePng(bytes: Uint8Array): Promise<DecodedImage> {
    const { PNG } = createRequire(import.meta.url)('pngjs') as typeof import('pngjs');
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
  }

  memoryBytes(): number {
    return totalmem();
  }

  async claimRunDirectory(runDir: string, options: { create: boolean }): Promise<RunDirectoryClaim | undefined> {
    try {
      return await claimRunDirectory(runDir, options);
    } catch (error) {
      if (error instanceof RunDirectoryTaken) {
        if (error.holder === undefined) return undefined;
        throw new UserError(
          `${this.displayPath(runDir)} is in use by another train (process ${error.holder}); wait for it, or choose another --name (if no train is running, remove ${this.displayPath(join(runDir, LOCK_FILE))})`,
        );
      }
      throw new UserError(`cannot create the run directory ${this.displayPath(runDir)}: ${fileProblem(error)}`);
    }
  }

  resolve(...parts: string[]): string {
    return resolve(...parts);
  }
  join(...parts: string[]): string {
    return join(...parts);
  }
  dirname(path: string): string {
    return dirname(path);
  }
  basename(path: string): string {
    return basename(path);
  }
  displayPath(path: string): string {
    const shown = relative(process.cwd(), resolve(path));
    return shown === '' ? '.' : shown.startsWith('..') || isAbsolute(shown) ? resolve(path) : shown;
  }

  print(line: string): void {
    process.stdout.write(`${line}\n`);
  }
  note(line: string): void {
    process.stderr.write(`${line}\n`);
  }
  progress(total: number, options: { quiet: boolean }): ProgressDisplay {
    return createProgress(total, { quiet: options.quiet, now: () => this.now() });
  }
  now(): number {
    return Date.now();
  }

  /** The first Ctrl-C aborts (the command checkpoints and stops); a second one quits at once. */
  interruptSignal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      process.on('SIGINT', () => {
        if (controller.signal.aborted) {
          process.stderr.write('\ninterrupted again: quitting now\n');
          process.exit(130);
        }
        process.stderr.write('\ninterrupted: finishing the current step and writing a checkpoint (Ctrl-C again to quit at once)\n');
        controller.abort();
      });
    }
    return this.controller.signal;
  }
}
