/**
 * Console sessions and the login throttle, kept in the console process (a restart logs everyone
 * out, which is the safe side). A session id is 32 random bytes; each session has its own CSRF
 * token, which every POST must carry.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

/** An idle session ends after this long. */
const IDLE_MS = 8 * 3_600_000;
/** Failed logins from one address within the window before logins from it are refused. */
export const LOGIN_FAILURES_ALLOWED = 5;
const LOGIN_WINDOW_MS = 15 * 60_000;

export interface Session {
  readonly id: string;
  readonly user: string;
  readonly csrf: string;
  /** The console has a Keys page (a service admin key is configured): the navigation links it. */
  readonly keysPage: boolean;
  lastSeen: number;
}

const token = (): string => randomBytes(32).toString('base64url');

export class Sessions {
  readonly #sessions = new Map<string, Session>();
  readonly #keysPage: boolean;

  constructor(options: { readonly keysPage: boolean }) {
    this.#keysPage = options.keysPage;
  }

  create(user: string, now = Date.now()): Session {
    const session: Session = { id: token(), user, csrf: token(), keysPage: this.#keysPage, lastSeen: now };
    this.#sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, its idle time reset; null when none or expired. */
  get(id: string | undefined, now = Date.now()): Session | null {
    if (!id) return null;
    const session = this.#sessions.get(id);
    if (!session) return null;
    if (now - session.lastSeen > IDLE_MS) {
      this.#sessions.delete(id);
      return null;
    }
    session.lastSeen = now;
    return session;
  }

  destroy(id: string): void {
    this.#sessions.delete(id);
  }
}

export function csrfMatches(session: Session, given: string | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Failed logins per client address; past the allowance, every login from it waits out the window. */
export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();

  /** Seconds to wait before trying again, or 0 when a login may be tried now. */
  retryAfter(address: string, now = Date.now()): number {
    const recent = (this.#failures.get(address) ?? []).filter((at) => now - at < LOGIN_WINDOW_MS);
    if (recent.length === 0) this.#failures.delete(address);
    else this.#failures.set(address, recent);
    if (recent.length < LOGIN_FAILURES_ALLOWED) return 0;
    return Math.ceil((recent[0]! + LOGIN_WINDOW_MS - now) / 1000);
  }

  failed(address: string, now = Date.now()): void {
    this.#failures.set(address, [...(this.#failures.get(address) ?? []), now]);
  }

  succeeded(address: string): void {
    this.#failures.delete(address);
  }
}
