/**
 * Proxy mode: a private service in front of a shared one. Lookups are answered from local data;
 * what local data does not know is asked upstream in one batched request per lookup and cached
 * (bounded, TTL). When upstream fails or is slow, the local answer stands. Reports and feedback
 * go upstream only as this proxy's own participation setting allows.
 *
 * The proxy follows upstream's convictions stream: a changed fingerprint leaves the cache, with
 * the cached near neighbours of a fuzzy one, and is passed on to this service's own stream, so
 * its gateways hear of it too (they drop their near neighbours themselves). While that stream is
 * down or not yet open, upstream answers are kept only NIMBUS_UNKNOWN_CACHE_MS.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Config } from '../../config/index.js';
import { FuzzyItemSet } from '../../fingerprint/fuzzy-set.js';
import { maskUrl } from '../../redact.js';
import type { FeedbackRequest, LookupResult, ReportBatch, ReportRecord } from '../api.js';
import { createReputationClient, type ReputationClient } from '../client.js';
import { ConvictionStream } from '../convictions-client.js';
import type { ConvictionLog } from './convictions.js';
import type { ServiceMetrics } from './metrics.js';

export const PROXY_CACHE_TTL_MS = 5 * 60_000;
export const PROXY_CACHE_MAX = 200_000;

export class UpstreamProxy {
  readonly #client: ReputationClient;
  /** The cached fuzzy fingerprints, so a changed one's near neighbours leave the cache with it. */
  readonly #fuzzy = new FuzzyItemSet();
  readonly #cache = new LRUCache<string, LookupResult>({
    max: PROXY_CACHE_MAX,
    ttl: PROXY_CACHE_TTL_MS,
    dispose: (_value, item, reason) => {
      if (reason !== 'set') this.#fuzzy.delete(item);
    },
  });
  readonly #log: Logger;
  readonly #metrics: ServiceMetrics;
  #sharing: 'off' | 'standard' | 'extended';
  readonly #stream: ConvictionStream;
  #streamUp = false;
  readonly #shortTtlMs: number;

  constructor(config: Config, log: Logger, metrics: ServiceMetrics, convictions: ConvictionLog) {
    this.#client = createReputationClient({ url: config.upstreamUrl!, key: config.upstreamKey ?? '', timeoutMs: config.lookupTimeoutMs });
    this.#log = log.child({ upstream: maskUrl(config.upstreamUrl) });
    this.#metrics = metrics;
    this.#sharing = sharingOf(config);
    this.#shortTtlMs = config.unknownCacheMs;
    const passOn = (publish: Promise<void>): void => {
      publish.catch((error: unknown) => this.#log.warn({ event: 'reputation.convictions_publish_failed', err: (error as Error).message }, 'upstream verdict changes not passed on to this service\'s stream'));
    };
    this.#stream = new ConvictionStream({
      url: config.upstreamUrl!,
      key: config.upstreamKey ?? '',
      handlers: {
        changed: (changes) => {
          const neighbours = new Set<string>();
          for (const change of changes) {
            this.#cache.delete(change.item);
            for (const near of this.#fuzzy.near(change.item)) neighbours.add(near);
          }
          for (const near of neighbours) this.#cache.delete(near);
          passOn(convictions.publish(changes));
        },
        reset: () => {
          this.#cache.clear();
          passOn(convictions.publishReset());
        },
        up: () => {
          this.#streamUp = true;
          this.#log.info({ event: 'reputation.upstream_convictions_up' }, 'following upstream\'s convictions stream');
        },
        down: (status, reason) => {
          // Cached answers stay (upstream down, they are what the proxy has); those that changed
          // meanwhile are named when the stream resumes from its Last-Event-ID.
          const was = this.#streamUp;
          this.#streamUp = false;
          if (was || status === 401) this.#log.warn({ event: 'reputation.upstream_convictions_down', status, err: reason }, 'upstream\'s convictions stream is down; upstream answers are kept only briefly');
        },
      },
    });
  }

  reload(config: Config): void {
    this.#sharing = sharingOf(config);
  }

  /** Replaces local `unknown` answers by upstream (cached) ones where upstream knows more. */
  async lookup(local: readonly LookupResult[]): Promise<LookupResult[]> {
    const answers = [...local];
    const missing: number[] = [];
    for (let i = 0; i < answers.length; i++) {
      if (answers[i]!.verdict !== 'unknown') continue;
      const cached = this.#cache.get(answers[i]!.item);
      if (cached) {
        answers[i] = cached;
        this.#metrics.proxyCacheHits.inc();
      } else missing.push(i);
    }
    if (missing.length === 0) return answers;
    const unique = [...new Set(missing.map((i) => answers[i]!.item))];
    try {
      const upstream = await this.#client.lookup(unique);
      const byItem = new Map(upstream.map((result) => [result.item, result]));
      for (const item of unique) {
        const result = byItem.get(item);
        if (!result) continue;
        if (this.#streamUp) this.#cache.set(item, result);
        else if (this.#shortTtlMs > 0) this.#cache.set(item, result, { ttl: this.#shortTtlMs });
        else continue;
        this.#fuzzy.add(item);
      }
      for (const i of missing) {
        const result = byItem.get(answers[i]!.item);
        if (result && result.verdict !== 'unknown') answers[i] = result;
      }
    } catch (error) {
      this.#metrics.upstreamFailures.inc();
      this.#log.warn({ event: 'reputation.upstream_lookup_failed', err: (error as Error).message }, 'upstream lookup failed; answering from local data');
    }
    return answers;
  }

  /** Forwards a batch (same batch id, so upstream stays idempotent) when participation allows. */
  async forwardReport(batch: ReportBatch): Promise<void> {
    if (this.#sharing === 'off') return;
    const records = this.#sharing === 'extended' ? batch.records : batch.records.map(standardOnly);
    try {
      await this.#client.report({ batchId: batch.batchId, records });
    } catch (error) {
      this.#metrics.upstreamFailures.inc();
      this.#log.warn({ event: 'reputation.upstream_report_failed', batchId: batch.batchId, err: (error as Error).message }, 'report not forwarded upstream');
    }
  }

  async forwardFeedback(label: 'spam' | 'ham', items: readonly string[]): Promise<void> {
    if (this.#sharing === 'off' || items.length === 0) return;
    const body: FeedbackRequest = { label, items: [...items] };
    try {
      await this.#client.feedback(body);
    } catch (error) {
      this.#metrics.upstreamFailures.inc();
      this.#log.warn({ event: 'reputation.upstream_feedback_failed', err: (error as Error).message }, 'feedback not forwarded upstream');
    }
  }

  close(): void {
    this.#stream.close();
    this.#client.close();
  }
}

function sharingOf(config: Config): 'off' | 'standard' | 'extended' {
  return config.acceptStatement ? config.participation : 'off';
}

/** Standard participation: checksums and verdicts only; the extended fields stay here. */
function standardOnly(record: ReportRecord): ReportRecord {
  const { size: _size, urls: _urls, attachments: _attachments, ...rest } = record;
  return rest;
}
