/**
 * A message's DNS time budget (NIMBUS_DNS_TIMEOUT_MS): one deadline shared by every query of a
 * group of checks (the public lists; SPF, DKIM, DMARC and ARC), so ten slow lists cost a message
 * the budget once, not ten times. The scan core starts it and never
 * lets it run past its own budget (NIMBUS_SCAN_TIMEOUT_MS).
 */
export class DnsBudget {
  readonly #deadline: number;

  /** `ms` from now; a negative or zero budget is spent at once (answers come from the cache only). */
  constructor(ms: number, now: number = performance.now()) {
    this.#deadline = now + Math.max(0, ms);
  }

  /** Milliseconds left (0 when spent). */
  remaining(now: number = performance.now()): number {
    return Math.max(0, this.#deadline - now);
  }

  get spent(): boolean {
    return this.remaining() === 0;
  }

  /**
   * `work`'s result, or `late` once the budget is spent. The work itself goes on (a DNS query
   * cannot be taken back): its answer still lands in the cache for the next message.
   */
  async race<T, L>(work: Promise<T>, late: L): Promise<T | L> {
    const left = this.remaining();
    if (left === 0) return late;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<L>((resolve) => (timer = setTimeout(() => resolve(late), left)));
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
