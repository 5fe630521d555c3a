/**
 * Scanning messages that did not come over a wire (`nimbus check`, `nimbus report`): no
 * envelope, no connecting client. The sender's address is then the client of the hop that
 * handed the message to the site, read from its Received headers with what the configuration
 * says about the site (src/fingerprint/received.ts), and the same scan core decides as for the
 * fronts.
 */
import { Readable } from 'node:stream';
import type { Config } from '../config/index.js';
import { blockListOf, inBlockList } from '../config/parsers.js';
import type { SiteKnowledge } from '../fingerprint/received.js';
import type { AttachmentInfo, Skip } from '../fingerprint/index.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { createLogger } from '../log.js';
import { formatReportPart } from './headers.js';
import { splitMessages } from './mbox.js';
import { Scanner } from './scanner.js';
import type { MessageScanner, MessageSource, ScanRequest, Verdict } from './types.js';

export interface CheckResult {
  /** File name, `-` for stdin; `name#N` for the N-th message of an mbox. */
  readonly file: string;
  readonly fingerprints: readonly Fingerprint[];
  readonly skips: readonly Skip[];
  readonly urls: readonly string[];
  readonly attachments: readonly AttachmentInfo[];
  readonly verdict: Verdict;
  readonly score: number;
  /** X-Nimbus-Report entries as the header would write them. */
  readonly report: string[];
}

export function bytesSource(bytes: Buffer): MessageSource {
  return { size: bytes.length, read: async () => bytes, stream: () => Readable.from([bytes]) };
}

/** What a configuration says about its own site: relay domains, host name, trusted networks. */
export function siteOf(config: Pick<Config, 'relayDomains' | 'hostname' | 'trustedNetworks'>): SiteKnowledge {
  const trusted = blockListOf(config.trustedNetworks);
  return {
    ownNames: [...config.relayDomains, config.hostname],
    isTrusted: (ip) => inBlockList(trusted, ip),
  };
}

/** A message read from a file or stdin, as the scan core takes it: its client is the Received hand-off. */
export function offlineRequest(id: string, bytes: Buffer, site: SiteKnowledge = {}): ScanRequest {
  return { id, message: bytesSource(bytes), envelope: { mailFrom: '', rcptTo: [] }, client: { ip: null, helo: '', name: null, trusted: false }, site };
}

/** A scanner that knows no reputation: fingerprints and GTUBE only (every fingerprint `unknown`). */
export function fingerprintsOnlyScanner(): Scanner {
  const policy = { tagScore: 5, rejectScore: 15, spamAction: 'tag', subjectTag: '', weights: { ip: 0, net: 0, attachment: 0, image: 0, url: 0, body: 0, domain: 0 }, spamtraps: [], scanTimeoutMs: 600_000 } as const;
  return new Scanner({ policy, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: createLogger('silent') });
}

/** Fingerprints and verdict of every message of one input (an mbox is several). */
export async function checkMessages(file: string, raw: Buffer, scanner: MessageScanner = fingerprintsOnlyScanner(), site: SiteKnowledge = {}): Promise<CheckResult[]> {
  const messages = splitMessages(raw);
  const results: CheckResult[] = [];
  for (const [index, message] of messages.entries()) {
    const name = messages.length > 1 ? `${file}#${index + 1}` : file;
    const scan = await scanner.scan(offlineRequest(name, message, site));
    const evidence = scan.evidence;
    results.push({
      file: name,
      fingerprints: evidence?.fingerprints ?? [],
      skips: evidence?.skips ?? [],
      urls: evidence?.urls ?? [],
      attachments: evidence?.attachments ?? [],
      verdict: scan.verdict,
      score: scan.score,
      report: scan.report.map(formatReportPart),
    });
  }
  return results;
}
