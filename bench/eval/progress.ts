/**
 * A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise (logs).
 */
export class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #started = Date.now();
  readonly #tty = Boolean(process.stderr.isTTY);
  #lastDecile = -1;
  #lastDraw = 0;

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = Math.max(1, total);
  }

  update(done: number, detail = ''): void {
    const now = Date.now();
    const fraction = Math.min(1, done / this.#total);
    const seconds = (now - this.#started) / 1000;
    const rate = done / Math.max(seconds, 0.001);
    const eta = done > 0 ? Math.round((this.#total - done) / Math.max(rate, 0.001)) : 0;
    const text = `${this.#label} ${done}/${this.#total} ${(fraction * 100).toFixed(0)}% ${rate.toFixed(1)}/s eta ${formatSeconds(eta)}${detail ? ` ${detail}` : ''}`;
    if (this.#tty) {
      if (now - this.#lastDraw < 100 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 28;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}\u001b[K`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > this.#lastDecile) {
      this.#lastDecile = decile;
      process.stderr.write(`${text}\n`);
    }
  }

  done(summary = ''): void {
    const seconds = (Date.now() - this.#started) / 1000;
    if (this.#tty) process.stderr.write('\n');
    process.stderr.write(`${this.#label}: done in ${formatSeconds(Math.round(seconds))}${summary ? `, ${summary}` : ''}\n`);
  }
}

export function formatSeconds(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}
