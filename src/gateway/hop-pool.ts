/**
 * Idle next-hop sessions kept for the next sender, as Postfix's SMTP client keeps its connection
 * cache. Inbound mail is mostly one message per connection (an MTA behind Postfix, or MX
 * traffic), and the lockstep relay used to open a next-hop session for each: connect, greeting,
 * EHLO before the sender's MAIL could be answered, QUIT after. A session whose transaction is
 * over goes back here when its sender's connection closes and the next sender's MAIL goes out
 * on it at once.
 *
 * Bounds, so that the next hop is not held: at most `maxIdle` sessions wait, each for at most
 * `idleMs` (then QUIT), and a session carries at most `maxTransactions` messages. A session the
 * next hop closed while it waited is dropped at once (its socket's close event); one it closes
 * just as it is taken fails on the first command, and the gateway then opens a new one (server.ts).
 */
import type { HostPort } from '../config/index.js';
import type { NextHopSession } from './next-hop.js';

export interface HopPoolOptions {
  readonly maxIdle: number;
  readonly idleMs: number;
  readonly maxTransactions: number;
}

/** Like Postfix's smtp_connection_cache_time_limit (2 s) with room for a burst's gaps. */
export const HOP_POOL_DEFAULTS: HopPoolOptions = { maxIdle: 32, idleMs: 5_000, maxTransactions: 100 };

interface Idle {
  readonly session: NextHopSession;
  readonly timer: NodeJS.Timeout;
}

export class NextHopPool {
  readonly #options: HopPoolOptions;
  /** Most recently released last: taken from the end, so the oldest ones time out first. */
  #idle: Idle[] = [];
  #closed = false;

  constructor(options: HopPoolOptions = HOP_POOL_DEFAULTS) {
    this.#options = options;
  }

  get size(): number {
    return this.#idle.length;
  }

  /** An idle session to `target`, or null (the caller opens one). */
  take(target: HostPort): NextHopSession | null {
    while (this.#idle.length > 0) {
      const { session, timer } = this.#idle.pop()!;
      clearTimeout(timer);
      if (session.idle && sameTarget(session.target, target)) return session;
      void session.quit();
    }
    return null;
  }

  /** Keeps the session for another sender when it is fit for one; ends it otherwise. */
  release(session: NextHopSession, target: HostPort | null): void {
    const keep =
      !this.#closed &&
      target !== null &&
      session.idle &&
      sameTarget(session.target, target) &&
      session.transactions < this.#options.maxTransactions &&
      this.#idle.length < this.#options.maxIdle;
    if (!keep) {
      void session.quit();
      return;
    }
    const timer = setTimeout(() => this.#expire(session), this.#options.idleMs);
    timer.unref();
    this.#idle.push({ session, timer });
  }

  /** Ends every idle session (a changed next hop on reload, or shutdown). */
  drain(): Promise<void> {
    const idle = this.#idle.splice(0);
    return Promise.all(
      idle.map(({ session, timer }) => {
        clearTimeout(timer);
        return session.quit();
      }),
    ).then(() => undefined);
  }

  /** Drains, and ends every session released from now on. */
  close(): Promise<void> {
    this.#closed = true;
    return this.drain();
  }

  #expire(session: NextHopSession): void {
    const index = this.#idle.findIndex((entry) => entry.session === session);
    if (index >= 0) this.#idle.splice(index, 1);
    void session.quit();
  }
}

function sameTarget(a: HostPort, b: HostPort): boolean {
  return a.host === b.host && a.port === b.port;
}
