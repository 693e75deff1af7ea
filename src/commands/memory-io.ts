/**
 * An `Io` over files held in memory (browser-safe): for running the commands in a page or a
 * worker against in-page data, and for tests. Paths are POSIX-style, relative to `cwd`.
 */
import type { ProgressUpdate } from '../training.js';
import { UserError } from '../errors.js';
import type { Io, ProgressDisplay, RunPictureRenderer } from './io.js';

function normalise(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** Options of `MemoryIo`: working folder, starting files, where output goes. */
export interface MemoryIoOptions {
  /** Working folder (default "/"). */
  cwd?: string;
  /** Files to start with: path -> text or bytes. */
  files?: Record<string, string | Uint8Array>;
  /** Where printed lines go (default: kept in `output`). */
  onPrint?: (line: string) => void;
  onNote?: (line: string) => void;
  onProgress?: (update: ProgressUpdate) => void;
  renderRunPictures?: RunPictureRenderer;
  now?: () => number;
}

/** An `Io` over in-memory files (a browser page, tests): the CLI's commands run on it unchanged. */
export class MemoryIo implements Io {
  /** The files, by absolute path. */
  readonly files = new Map<string, Uint8Array>();
  /** The folders, by absolute path. */
  readonly folders = new Set<string>(['/']);
  /** Lines printed as output, and as notes (progress logs included). */
  readonly output: string[] = [];
  /** Lines written as notes (stderr's part). */
  readonly notes: string[] = [];
  /** The working folder (absolute). */
  readonly cwd: string;
  readonly renderRunPictures?: RunPictureRenderer;
  private controller = new AbortController();

  constructor(private readonly options: MemoryIoOptions = {}) {
    this.cwd = normalise(options.cwd ?? '/');
    this.renderRunPictures = options.renderRunPictures;
    this.addFolder(this.cwd);
    for (const [path, content] of Object.entries(options.files ?? {})) this.setFile(path, content);
  }

  private addFolder(path: string): void {
    for (let folder = normalise(path); !this.folders.has(folder); folder = this.dirname(folder)) this.folders.add(folder);
  }

  /** Puts a file in place (creating its folders), e.g. an upload. */
  setFile(path: string, content: string | Uint8Array): void {
    const full = this.resolve(path);
    this.addFolder(this.dirname(full));
    this.files.set(full, typeof content === 'string' ? new TextEncoder().encode(content) : content);
  }

  /** A file's content as text (undefined if there is no such file). */
  getText(path: string): string | undefined {
    const bytes = this.files.get(this.resolve(path));
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  /** Stops a running command cleanly (as Ctrl-C does in a terminal); later commands get a fresh signal. */
  interrupt(): void {
    this.controller.abort();
  }

  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }

  async readBytes(path: string): Promise<Uint8Array> {
    const full = this.resolve(path);
    const bytes = this.files.get(full);
    if (bytes === undefined) {
      throw new UserError(`cannot read ${this.displayPath(full)}: ${this.folders.has(full) ? 'is a folder, not a file' : 'no such file or folder'}`);
    }
    return bytes.slice();
  }

  async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const full = this.resolve(path);
    if (!this.folders.has(this.dirname(full))) throw new UserError(`cannot write ${this.displayPath(full)}: no such file or folder`);
    this.files.set(full, typeof data === 'string' ? new TextEncoder().encode(data) : data.slice());
  }

  async exists(path: string): Promise<boolean> {
    const full = this.resolve(path);
    return this.files.has(full) || this.folders.has(full);
  }

  async mkdir(path: string): Promise<void> {
    const full = this.resolve(path);
    for (let folder = full; folder !== '/'; folder = this.dirname(folder)) {
      if (this.files.has(folder)) throw new UserError(`cannot create the folder ${this.displayPath(full)}: ${this.displayPath(folder)} is a file`);
    }
    this.addFolder(full);
  }

  resolve(...parts: string[]): string {
    let path = this.cwd;
    for (const part of parts) path = part.startsWith('/') ? part : `${path}/${part}`;
    return normalise(path);
  }
  join(...parts: string[]): string {
    const joined = parts.filter((part) => part !== '').join('/');
    const normal = normalise(joined);
    return joined.startsWith('/') ? normal : normal.slice(1) || '.';
  }
  dirname(path: string): string {
    const full = normalise(path);
    const cut = full.lastIndexOf('/');
    const folder = cut <= 0 ? '/' : full.slice(0, cut);
    return path.startsWith('/') ? folder : folder.slice(1) || '.';
  }
  basename(path: string): string {
    return normalise(path).split('/').pop() ?? '';
  }
  displayPath(path: string): string {
    const full = this.resolve(path);
    if (full === this.cwd) return '.';
    const prefix = this.cwd === '/' ? '/' : `${this.cwd}/`;
    return full.startsWith(prefix) ? full.slice(prefix.length) : full;
  }

  print(line: string): void {
    if (this.options.onPrint) this.options.onPrint(line);
    else this.output.push(line);
  }
  note(line: string): void {
    if (this.options.onNote) this.options.onNote(line);
    else this.notes.push(line);
  }
  progress(): ProgressDisplay {
    return {
      update: (update) => this.options.onProgress?.(update),
      log: (line) => this.note(line),
      stop: () => {},
    };
  }
  now(): number {
    return (this.options.now ?? Date.now)();
  }
  interruptSignal(): AbortSignal {
    if (this.controller.signal.aborted) this.controller = new AbortController();
    return this.controller.signal;
  }
}
