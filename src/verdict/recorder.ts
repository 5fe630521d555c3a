/**
 * What happens after the sender's message is decided, before its final reply: the statistics
 * record is made durable (STYLE: acknowledge nothing that is not stored), the message is counted
 * for Prometheus, and the embedded engine is handed, to learn after the reply, that these
 * fingerprints were seen, with the gateway's own verdict as a weak voice (src/reputation/scoring.ts
 * caps it so the gateway can never convict a fingerprint on its own say-so).
 */
import type { Logger } from 'pino';
import { ipFingerprints } from '../fingerprint/ip.js';
import type { MessageObserver, ProcessedMessage } from '../gateway/inspection.js';
import type { ReportRecord } from '../reputation/api.js';
import { countMessage, type GatewayMetrics, type Statistics } from '../stats/index.js';
import { evidenceOf } from './inspector.js';
import type { LocalLearner } from './local-learner.js';

export interface RecorderOptions {
  readonly stats: Statistics;
  readonly learner: LocalLearner;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
}

export class MessageRecorder implements MessageObserver {
  readonly #options: RecorderOptions;

  constructor(options: RecorderOptions) {
    this.#options = options;
  }

  async processed(message: ProcessedMessage): Promise<void> {
    const { inspection } = message;
    const evidence = evidenceOf(inspection);
    // Without evidence (the analysis failed) the sender's address is still known and worth counting.
    const fingerprints = evidence?.fingerprints ?? ipFingerprints(message.clientIp);
    countMessage(this.#options.metrics, inspection.verdict, inspection.action);
    await this.#options.stats.record({
      time: message.time,
      clientIp: message.clientIp,
      helo: message.helo,
      fingerprints,
      verdict: inspection.verdict,
      score: inspection.score,
      action: inspection.action,
      size: message.size,
      nextHop: message.nextHop,
      ...(evidence ? { urls: evidence.urls, attachments: evidence.attachments.map((a) => ({ sha256: a.sha256, type: a.type, size: a.size })) } : {}),
      ...(evidence && evidence.samples.length > 0 ? { samples: evidence.samples } : {}),
    });
    if (inspection.action === 'trap') return; // the trap's feedback already taught the engine
    const record: ReportRecord = {
      id: message.queueId,
      time: message.time.toISOString(),
      fingerprints: [...new Set(fingerprints.map((fingerprint) => fingerprint.text))],
      verdict: inspection.verdict,
      score: Number.isFinite(inspection.score) ? inspection.score : 0,
      action: inspection.action,
    };
    this.#options.learner.learn(record);
  }
}
