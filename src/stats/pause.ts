/**
 * The uploader's waits (backoff, idle): a timer that can be cut short. `stop()` ends any wait (a
 * reload, a close, opting out); `nudge()` ends only a wait that asked to end on new work (a new
 * record while idle), so a new record never shortens a backoff the service asked for.
 */
export class Pause {
  #wake: (() => void) | null = null;
  #endsOnNudge = false;

  /** Resolves after `ms`, or sooner on stop(), or on nudge() when `endsOnNudge`. */
  wait(ms: number, endsOnNudge: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) {
          this.#wake = null;
          this.#endsOnNudge = false;
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      this.#endsOnNudge = endsOnNudge;
    });
  }

  nudge(): void {
    if (this.#endsOnNudge) this.#wake?.();
  }

  stop(): void {
    this.#wake?.();
  }
}
