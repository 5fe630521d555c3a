/**
 * The next-hop half of the before-queue path: each sender command that must reach the next hop
 * runs on the connection's own next-hop session, taken from the pool (hop-pool.ts) or opened for
 * a new transaction. Any failure of the next hop itself becomes 451 4.4.1 for the sender.
 */
import type { Config } from '../config/index.js';
import type { NextHopPool } from './hop-pool.js';
import { NextHopError, NextHopSession, type SmtpResponse } from './next-hop.js';
import type { ConnectionState } from './session-state.js';
import { SMTP_REPLIES, SmtpReplyError } from './smtp-replies.js';

export class HopLockstep {
  readonly #pool: NextHopPool;
  readonly #config: () => Config;

  constructor(pool: NextHopPool, config: () => Config) {
    this.#pool = pool;
    this.#config = config;
  }

  /**
   * Runs a command on this connection's next-hop session, first taking one for a new transaction
   * (RSET of this connection's own session if a transaction is open there, else an idle pooled
   * one, else a new one). Any failure of the next hop itself becomes 451 4.4.1.
   */
  async command(state: ConnectionState, command: (hop: NextHopSession) => Promise<SmtpResponse>, fresh = false): Promise<SmtpResponse> {
    const config = this.#config();
    const target = config.nextHop!;
    try {
      if (fresh && state.hop?.usable && state.hop.inTransaction) {
        const reset = await state.hop.rset().catch(() => null);
        if (reset?.code !== 250) {
          state.hop.close();
          state.hop = null;
        }
      }
      if (!state.hop?.usable) {
        if (!fresh) throw new NextHopError('NEXT_HOP_DROPPED', 'next hop session lost during the transaction');
        const pooled = this.#pool.take(target);
        if (pooled) {
          state.hop = pooled;
          try {
            return await command(pooled);
          } catch (error) {
            if (!(error instanceof NextHopError)) throw error;
            // The next hop closed the idle session just as it was taken: nothing of this
            // transaction has reached it, so a new session is as good.
            pooled.close();
            state.hop = null;
          }
        }
        state.hop = await NextHopSession.open({ target, hostname: config.hostname, timeoutMs: config.nextHopTimeoutMs });
      }
      return await command(state.hop);
    } catch (error) {
      if (!(error instanceof NextHopError)) throw error;
      state.log.warn({ event: 'gateway.next_hop_failed', code: error.code, err: error.message }, 'next hop unavailable, answered 451');
      state.hop?.close();
      state.hop = null;
      throw new SmtpReplyError(SMTP_REPLIES.NEXT_HOP_UNAVAILABLE);
    }
  }

  /** Abandons the next-hop transaction without DATA; the session stays for the next one. */
  async reset(state: ConnectionState): Promise<void> {
    if (!state.hop?.usable) return;
    const reset = await state.hop.rset().catch(() => null);
    if (reset?.code !== 250) {
      state.hop.close();
      state.hop = null;
    }
  }
}
