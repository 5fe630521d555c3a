/**
 * Feedback (user reports, the admin's `nimbus report`, spam traps): the embedded engine learns
 * at once, trusting its own admin; the service hears it as one reporter's voice, only while
 * participation allows and only the fingerprints the mode may send.
 */
import type { Logger } from 'pino';
import type { Fingerprint } from '../fingerprint/types.js';
import type { ReputationClient } from '../reputation/client.js';
import type { FeedbackLabel, Reporter, ReputationEngine } from '../reputation/engine-types.js';

export type FeedbackSource = 'admin' | 'trap';

/** The embedded engine's voice for a local source: the gateway's own admin (and its traps) is trusted. */
export function localReporter(source: FeedbackSource): Reporter {
  return { id: `local-${source}`, weight: 1, trusted: true };
}
/** `forbidden`: the key's role may not send feedback (a sensor key); retrying will not help. */
export type RemoteFeedback = 'sent' | 'disabled' | 'nothing-sendable' | 'failed' | 'forbidden';

export interface FeedbackOptions {
  readonly local: ReputationEngine;
  /** Null when participation is off. */
  readonly remote: Pick<ReputationClient, 'feedback'> | null;
  readonly sendable: (fingerprint: Fingerprint) => boolean;
  readonly timeoutMs: number;
  readonly log: Logger;
}

const HTTP_FORBIDDEN = 403;

export class Feedback {
  readonly #options: FeedbackOptions;
  #forbiddenLogged = false;

  constructor(options: FeedbackOptions) {
    this.#options = options;
  }

  /**
   * The local engine has learnt when this resolves. With `background`, the service is told
   * afterwards without being waited for (`remote: 'pending'`): a spam trap's SMTP reply must not
   * wait on the service, which the lookup budget does not cover.
   */
  async report(
    label: FeedbackLabel,
    fingerprints: readonly Fingerprint[],
    source: FeedbackSource,
    options: { readonly background?: boolean } = {},
  ): Promise<{ local: number; remote: RemoteFeedback | 'pending' }> {
    const items = [...new Set(fingerprints.map((fingerprint) => fingerprint.text))];
    if (items.length === 0) return { local: 0, remote: 'nothing-sendable' };
    await this.#options.local.feedback(localReporter(source), label, items);
    const remote = this.#options.remote;
    if (remote === null) return { local: items.length, remote: 'disabled' };
    const sendable = [...new Set(fingerprints.filter(this.#options.sendable).map((fingerprint) => fingerprint.text))];
    if (sendable.length === 0) return { local: items.length, remote: 'nothing-sendable' };
    const sent = this.#send(remote, label, sendable, source);
    if (options.background) {
      void sent;
      return { local: items.length, remote: 'pending' };
    }
    return { local: items.length, remote: await sent };
  }

  async #send(remote: Pick<ReputationClient, 'feedback'>, label: FeedbackLabel, sendable: string[], source: FeedbackSource): Promise<RemoteFeedback> {
    try {
      await remote.feedback({ label, items: sendable }, AbortSignal.timeout(Math.max(this.#options.timeoutMs, 5000)));
      return 'sent';
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if ((error as { status?: unknown }).status === HTTP_FORBIDDEN) {
        // Said once per process: every trap hit would repeat it, and only the admin can fix it.
        if (!this.#forbiddenLogged) {
          this.#options.log.error({ event: 'feedback.forbidden', source, err: message }, 'NIMBUS_REPUTATION_KEY may not send feedback (a sensor key?): give this gateway a reporter key; reports and spam traps teach only the local engine until then');
          this.#forbiddenLogged = true;
        }
        return 'forbidden';
      }
      this.#options.log.warn({ event: 'feedback.remote_failed', source, err: message }, 'feedback not delivered to the reputation service (kept locally)');
      return 'failed';
    }
  }
}
