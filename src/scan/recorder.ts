/**
 * What every front does after a message is decided, before its final reply: the statistics
 * record is made durable (STYLE: acknowledge nothing that is not stored), the message is counted
 * for Prometheus, and the embedded engine is handed, to learn after the reply, that these
 * fingerprints were seen, with the front's own verdict as a weak voice (src/reputation/scoring.ts
 * caps it so a gateway can never convict a fingerprint on its own say-so).
 */
import type { Logger } from 'pino';
import { ipFingerprints } from '../fingerprint/ip.js';
import type { Fingerprint } from '../fingerprint/types.js';
import type { ReportRecord } from '../reputation/api.js';
import { countMessage, type GatewayMetrics, type Statistics } from '../stats/index.js';
import type { HistoryEntry } from '../stats/history-store.js';
import type { HistoryWriter } from '../stats/history-writer.js';
import type { LocalLearner } from './local-learner.js';
import type { Envelope, ScanAction, ScanResult } from './types.js';

/** One message as a front handled it. */
export interface ProcessedMessage {
  /** The front's queue id. */
  readonly id: string;
  readonly time: Date;
  readonly clientIp: string;
  readonly helo: string;
  readonly size: number;
  readonly envelope: Envelope;
  /** The decoded Subject, only when NIMBUS_HISTORY_SUBJECTS=yes; else null. */
  readonly subject: string | null;
  readonly scan: ScanResult;
  /** What the front did: the scan's action, unless it could not (no quarantine configured: `tag`). */
  readonly action: ScanAction;
  /** The next hop's reply to the message; null when not relayed (Maildir, milter, discard, trap, reject). */
  readonly nextHop: { readonly code: number; readonly text: string } | null;
}

export interface MessageObserver {
  /** Awaited before the sender gets its final reply: statistics are durable first. */
  processed(message: ProcessedMessage): Promise<void>;
}

export interface RecorderOptions {
  readonly stats: Statistics;
  readonly learner: LocalLearner;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** The local message history; null: none kept (commands, tests). */
  readonly history?: HistoryWriter | null;
}

export class MessageRecorder implements MessageObserver {
  readonly #options: RecorderOptions;

  constructor(options: RecorderOptions) {
    this.#options = options;
  }

  async processed(message: ProcessedMessage): Promise<void> {
    const { scan, action } = message;
    const evidence = scan.evidence;
    // Without evidence (the scan timed out or failed) the sender's address is still known and worth counting.
    const fingerprints = evidence?.fingerprints ?? ipFingerprints(message.clientIp);
    countMessage(this.#options.metrics, scan.verdict, action);
    await this.#options.stats.record({
      time: message.time,
      clientIp: message.clientIp,
      helo: message.helo,
      fingerprints,
      verdict: scan.verdict,
      score: scan.score,
      shared: scan.shared,
      action,
      size: message.size,
      nextHop: message.nextHop,
      ...(evidence ? { urls: evidence.urls, attachments: evidence.attachments.map((a) => ({ sha256: a.sha256, type: a.type, size: a.size })) } : {}),
      ...(evidence && evidence.samples.length > 0 ? { samples: evidence.samples } : {}),
    });
    // Queued only: written in batches after the reply, so the history costs the sender nothing.
    this.#options.history?.add(historyEntry(message, fingerprints));
    if (action === 'trap') return; // the trap's feedback already taught the engine
    const record: ReportRecord = {
      id: message.id,
      time: message.time.toISOString(),
      fingerprints: [...new Set(fingerprints.map((fingerprint) => fingerprint.text))],
      verdict: scan.verdict,
      score: Number.isFinite(scan.score) ? scan.score : 0,
      action,
    };
    this.#options.learner.learn(record);
  }
}

function historyEntry(message: ProcessedMessage, seen: readonly Fingerprint[]): HistoryEntry {
  const { scan } = message;
  const looked = new Map(scan.fingerprints.map((result) => [result.fingerprint.text, result]));
  return {
    time: message.time.getTime(),
    queueId: message.id,
    clientIp: message.clientIp,
    helo: message.helo,
    mailFrom: message.envelope.mailFrom,
    rcptCount: message.envelope.rcptTo.length,
    size: message.size,
    verdict: scan.verdict,
    score: scan.score,
    action: message.action,
    tests: scan.tests,
    fingerprints: [...new Map(seen.map((fingerprint) => [fingerprint.text, fingerprint])).values()].map((fingerprint) => {
      const result = looked.get(fingerprint.text);
      const { text, label } = fingerprint;
      const verdict = result?.verdict ?? 'unknown';
      const reputation = result?.reputation ?? 0;
      const weight = result?.weight ?? 0;
      const contribution = result?.contribution ?? 0;
      const complete = result?.complete ?? false;
      // Two literals rather than a spread for the label: a spread before further keys defines
      // each of them through V8's runtime (~0.8% of a milter's CPU on the 5 KB mix, perf), 23
      // times a message. Same keys in the same order, so the same JSON.
      return label === undefined ? { text, verdict, reputation, weight, contribution, complete } : { text, label, verdict, reputation, weight, contribution, complete };
    }),
    subject: message.subject,
  };
}
