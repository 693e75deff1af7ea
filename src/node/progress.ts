/**
 * Progress on Node: a cli-progress bar with ETA, loss and throughput on a terminal; otherwise (or
 * with --quiet) a plain line every few seconds. Everything goes to stderr, so stdout stays output.
 */
import cliProgress from 'cli-progress';
import type { ProgressDisplay } from '../commands/io.js';
import { formatLoss, formatSeconds, type ProgressUpdate } from '../training.js';

const PLAIN_INTERVAL_MS = 5000;

/** A plain progress line: "step 1200/3000 (40%) loss 12.345 bits/seq, 850 steps/s, ETA 2s". */
export function plainProgressLine(update: ProgressUpdate): string {
  const percent = update.total > 0 ? Math.floor((100 * update.step) / update.total) : 100;
  const eta = formatSeconds(update.etaSeconds);
  return `step ${update.step}/${update.total} (${percent}%) loss ${formatLoss(update.loss)} bits/seq, lr ${update.lr.toExponential(2)}, ${update.stepsPerSecond.toFixed(1)} steps/s, ETA ${eta}`;
}

class PlainProgress implements ProgressDisplay {
  private lastPrinted = -Infinity;
  private pending: ProgressUpdate | undefined;
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly now: () => number,
  ) {}
  update(update: ProgressUpdate): void {
    this.pending = update;
    if (this.now() - this.lastPrinted >= PLAIN_INTERVAL_MS) this.flush();
  }
  private flush(): void {
    if (this.pending === undefined) return;
    this.stream.write(`${plainProgressLine(this.pending)}\n`);
    this.pending = undefined;
    this.lastPrinted = this.now();
  }
  log(line: string): void {
    this.stream.write(`${line}\n`);
  }
  stop(): void {
    this.flush(); // the last state, if not shown yet
  }
}

class BarProgress implements ProgressDisplay {
  private readonly multibar: cliProgress.MultiBar;
  private readonly bar: cliProgress.SingleBar;
  constructor(total: number, stream: NodeJS.WritableStream) {
    this.multibar = new cliProgress.MultiBar(
      {
        stream,
        format: ' {bar} {percentage}% | step {value}/{total} | loss {loss} bits/seq | {speed} steps/s | ETA {eta_text}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        etaBuffer: 200,
        fps: 10,
        barsize: 30,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar = this.multibar.create(total, 0, { loss: '-', speed: '-', eta_text: '?' });
  }
  update(update: ProgressUpdate): void {
    this.bar.setTotal(update.total);
    this.bar.update(update.step, { loss: formatLoss(update.loss), speed: update.stepsPerSecond.toFixed(1), eta_text: formatSeconds(update.etaSeconds) });
  }
  log(line: string): void {
    this.multibar.log(`${line}\n`);
  }
  stop(): void {
    this.multibar.stop();
  }
}

export function createProgress(total: number, options: { quiet: boolean; stream?: NodeJS.WriteStream; now?: () => number }): ProgressDisplay {
  const stream = options.stream ?? process.stderr;
  if (!options.quiet && stream.isTTY) return new BarProgress(total, stream);
  return new PlainProgress(stream, options.now ?? Date.now);
}
