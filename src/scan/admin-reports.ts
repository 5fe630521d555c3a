/**
 * The local admin's evidence about stored messages, one path for `nimbus report`, `nimbus
 * report --forget` and `nimbus learn`: a message's fingerprints (its sender read from Received
 * with the site's own knowledge), the embedded engine's trusted voice for the admin, and the
 * record of reported messages (reported-messages.ts) that makes learning idempotent and an undo
 * exact.
 */
import type { Fingerprint } from '../fingerprint/types.js';
import type { SiteKnowledge } from '../fingerprint/received.js';
import { isSharedInfrastructure, messageKey, messagePairId } from '../reputation/engine.js';
import type { FeedbackLabel, ReputationEngine } from '../reputation/engine-types.js';
import type { BayesStore, TokenChange } from '../bayes/store.js';
import { analyseBytes } from './analyse.js';
import { localReporter } from './feedback.js';
import { messageDigest, type ReportedMessages } from './reported-messages.js';

export interface AnalysedStored {
  readonly digest: string;
  readonly fingerprints: readonly Fingerprint[];
  /** The classifier's token hashes (src/bayes/tokens.ts); empty unless the classifier is taught. */
  readonly tokens: readonly number[];
  /** Why nothing can be learnt from it (no fingerprints), else null. */
  readonly empty: string | null;
}

export type Learnt = 'learnt' | 'known' | 'relearnt';

export interface ForgetResult {
  /** The label it was recorded with; null when it was not in the record. */
  readonly label: FeedbackLabel | null;
  /** Fingerprints whose evidence from the admin was withdrawn. */
  readonly withdrawn: number;
}

export class AdminReports {
  readonly #engine: ReputationEngine;
  readonly #record: ReportedMessages;
  readonly #site: SiteKnowledge;
  readonly #reporter = localReporter('admin');
  readonly #bayes: BayesStore | null;

  /** With `bayes` (`nimbus learn`), learnt messages teach the local classifier too. */
  constructor(engine: ReputationEngine, record: ReportedMessages, site: SiteKnowledge, bayes: BayesStore | null = null) {
    this.#engine = engine;
    this.#record = record;
    this.#site = site;
    this.#bayes = bayes;
  }

  async analyse(raw: Buffer): Promise<AnalysedStored> {
    const found = await analyseBytes(raw, { clientIp: null, site: this.#site, keepAttachmentBytes: 0, imageHashes: undefined, tokens: this.#bayes !== null });
    const empty = found.fingerprints.length > 0 ? null : `no fingerprints (${found.skips.map((s) => s.reason).join(', ') || 'empty message'})`;
    return { digest: messageDigest(raw), fingerprints: found.fingerprints, tokens: found.tokens, empty };
  }

  /** True when the message is recorded with this label already (learning it again changes nothing). */
  known(digest: string, label: FeedbackLabel): boolean {
    return this.#record.labelOf(digest) === label;
  }

  /**
   * Records messages whose evidence the engine has been given (`nimbus report` gives it through
   * Feedback, to the service too); a message recorded before with the other label has its old
   * evidence withdrawn where no other message of that label holds it.
   */
  async recorded(label: FeedbackLabel, messages: readonly AnalysedStored[], now = Date.now()): Promise<Learnt[]> {
    const results = this.#record.recordAll(messages.map((m) => ({ digest: m.digest, label, items: m.fingerprints.map((f) => f.text) })), now);
    const other: FeedbackLabel = label === 'spam' ? 'ham' : 'spam';
    for (const [i, result] of results.entries()) if (result.status === 'relabelled') await this.#withdraw(other, result.released, messages[i]!.fingerprints.map((f) => f.text), now);
    return results.map((r) => (r.status === 'new' ? 'learnt' : r.status === 'known' ? 'known' : 'relearnt'));
  }

  /**
   * Learns a batch of messages in one engine write (`nimbus learn`): those recorded with this
   * label already are `known` and change nothing. Local only, as trusted as `nimbus report`.
   */
  async learn(label: FeedbackLabel, messages: readonly AnalysedStored[], now = Date.now()): Promise<Learnt[]> {
    const fresh = messages.filter((m) => !this.known(m.digest, label));
    // One engine call per message: a trusted spam report convicts link domains and sending
    // networks only with another reported message, so the engine must see each message apart.
    for (const m of fresh) if (m.fingerprints.length > 0) await this.#engine.feedback(this.#reporter, label, m.fingerprints.map((f) => f.text), now);
    const results = new Map<AnalysedStored, Learnt>();
    const recorded = await this.recorded(label, fresh, now);
    fresh.forEach((m, i) => results.set(m, recorded[i]!));
    this.#teachClassifier(label, fresh, recorded);
    return messages.map((m) => results.get(m) ?? 'known');
  }

  /**
   * The classifier counts each message once per label, as the record does: a message new to the
   * record adds its tokens to the label; one relabelled moves them from the other label (its
   * tokens are the same: the digest is of its identity and body). After the record, so that a
   * crash in between leaves a message uncounted rather than counted twice on the next learn.
   */
  #teachClassifier(label: FeedbackLabel, messages: readonly AnalysedStored[], results: readonly Learnt[]): void {
    if (this.#bayes === null) return;
    const other: FeedbackLabel = label === 'spam' ? 'ham' : 'spam';
    const changes: TokenChange[] = [];
    for (const [i, result] of results.entries()) {
      const tokens = messages[i]!.tokens;
      if (result === 'known' || tokens.length === 0) continue;
      if (result === 'relearnt') changes.push({ label: other, tokens, delta: -1 });
      changes.push({ label, tokens, delta: 1 });
    }
    this.#bayes.apply(changes);
  }

  /**
   * Undoes the admin's report of one message: the evidence it added is withdrawn from every
   * fingerprint no other reported message of the same label holds. A message reported before the
   * record existed (or never) is looked at by its fingerprints: those no recorded message holds
   * lose the admin's evidence of either label.
   */
  async forget(message: AnalysedStored, now = Date.now()): Promise<ForgetResult> {
    const entry = this.#record.forget(message.digest);
    const items = message.fingerprints.map((f) => f.text);
    if (entry !== null) {
      const withdrawn = await this.#withdraw(entry.label, entry.released, items, now);
      return { label: entry.label, withdrawn };
    }
    let withdrawn = 0;
    for (const label of ['spam', 'ham'] as const) withdrawn += await this.#withdraw(label, this.#record.unheld(items, label), items, now);
    return { label: null, withdrawn };
  }

  /**
   * The engine keeps a trusted spam report's link domains and sending networks under the
   * message's own pair (engine.ts, messagePairId), the rest under the reporter's: each is
   * withdrawn where it was put. The message's own pair is its evidence alone, so it is withdrawn
   * whole, even where other reported messages name the same domain (their pairs stay).
   */
  async #withdraw(label: FeedbackLabel, released: readonly string[], messageItems: readonly string[], now: number): Promise<number> {
    if (label === 'ham') return released.length === 0 ? 0 : this.#engine.forget(this.#reporter.id, label, released, now);
    const shared = [...new Set(messageItems.filter(isSharedInfrastructure))];
    const own = released.filter((item) => !isSharedInfrastructure(item));
    const messagePair = messagePairId(this.#reporter.id, messageKey(messageItems));
    const fromReporter = own.length === 0 ? 0 : await this.#engine.forget(this.#reporter.id, label, own, now);
    const fromMessage = shared.length === 0 ? 0 : await this.#engine.forget(messagePair, label, shared, now);
    return fromReporter + fromMessage;
  }
}
