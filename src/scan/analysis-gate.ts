/**
 * Bounds how many messages one gateway process analyses at once, by count and by bytes.
 *
 * Analysis holds a message whole in memory several times over (the copy it parses, MIME parts,
 * decoded attachments and images) and is CPU work: 200 senders finishing DATA together would
 * otherwise parse 200 messages at once, each slower for the others, and multiply the memory.
 * Waiting messages hold only their spool. A message larger than the byte budget is analysed
 * alone (the inspector itself skips parsing above its own limit), never refused.
 */
export interface AnalysisGateOptions {
  readonly maxConcurrent: number;
  readonly maxBytes: number;
}

/**
 * Enough to keep one core and the libuv threads that decode images (4 by default) busy, and
 * to bound the memory of what is parsed at once to a few times 32 MB per process.
 */
export const ANALYSIS_GATE_DEFAULTS: AnalysisGateOptions = { maxConcurrent: 8, maxBytes: 32 * 1024 * 1024 };

export class AnalysisGate {
  readonly #options: AnalysisGateOptions;
  #running = 0;
  #bytes = 0;
  #queue: { size: number; start: () => void }[] = [];

  constructor(options: AnalysisGateOptions = ANALYSIS_GATE_DEFAULTS) {
    this.#options = options;
  }

  /** Runs `work` once there is room for a message of `size` bytes; first come, first served. */
  async run<T>(size: number, work: () => Promise<T>): Promise<T> {
    await this.#enter(size);
    try {
      return await work();
    } finally {
      this.#leave(size);
    }
  }

  #fits(size: number): boolean {
    if (this.#running === 0) return true;
    return this.#running < this.#options.maxConcurrent && this.#bytes + size <= this.#options.maxBytes;
  }

  #enter(size: number): Promise<void> {
    // Strict order: a large message at the head is not overtaken forever by small ones.
    if (this.#queue.length === 0 && this.#fits(size)) {
      this.#take(size);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#queue.push({ size, start: resolve }));
  }

  #take(size: number): void {
    this.#running++;
    this.#bytes += size;
  }

  #leave(size: number): void {
    this.#running--;
    this.#bytes -= size;
    while (this.#queue.length > 0 && this.#fits(this.#queue[0]!.size)) {
      const next = this.#queue.shift()!;
      this.#take(next.size);
      next.start();
    }
  }
}
