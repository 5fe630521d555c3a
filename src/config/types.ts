/**
 * The typed configuration the rest of Nimbus reads, and the error a wrong value raises. The
 * variables that feed each field are in table.ts; loader.ts turns them into a frozen `Config`.
 */
import type { BlockList } from 'node:net';
import { NimbusError } from '../errors.js';

export const FINGERPRINT_KINDS = ['ip', 'net', 'attachment', 'image', 'url', 'body', 'domain'] as const;
export type FingerprintKind = (typeof FINGERPRINT_KINDS)[number];

export const SPAM_ACTIONS = ['tag', 'reject', 'quarantine', 'discard'] as const;
export type SpamAction = (typeof SPAM_ACTIONS)[number];

export const PARTICIPATION_MODES = ['off', 'standard', 'extended'] as const;
export type ParticipationMode = (typeof PARTICIPATION_MODES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const STORES = ['sqlite', 'redis'] as const;
export type StoreKind = (typeof STORES)[number];

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A listener: TCP, or a unix socket (the milter's `unix:/path`). */
export type ListenAddress = ({ readonly kind: 'tcp' } & HostPort) | { readonly kind: 'unix'; readonly path: string };

/** NIMBUS_MILTER_QUARANTINE: the MTA's hold queue, or Nimbus's own quarantine. */
export const MILTER_QUARANTINE_MODES = ['mta', 'store'] as const;
export type MilterQuarantineMode = (typeof MILTER_QUARANTINE_MODES)[number];

/** NIMBUS_MILTER_ON_ERROR: what the milter answers when Nimbus itself fails. */
export const MILTER_ERROR_ACTIONS = ['accept', 'tempfail'] as const;
export type MilterErrorAction = (typeof MILTER_ERROR_ACTIONS)[number];

/**
 * What a public DNS list is asked (docs/admin/dns-lists.md): `ip` the client's address (IPv4
 * octets or IPv6 nibbles, reversed), `ip4` the same for IPv4 clients only, `domain` the registrable
 * domain of each link, `sha256` each attachment's SHA-256 in hex as two 32-digit labels (a DNS
 * label holds at most 63 characters), `sha256-base32` the same hash in unpadded lower-case base32.
 */
export const DNS_LIST_KINDS = ['ip', 'ip4', 'domain', 'sha256', 'sha256-base32'] as const;
export type DnsListKind = (typeof DNS_LIST_KINDS)[number];

/** One answer (or set of answers) a list gives, and what it means. */
export interface DnsListCode {
  /** Answers from `first` to `last` (IPv4, inclusive) match; null for a bitmask code. */
  readonly range: { readonly first: string; readonly last: string } | null;
  /** A bitmask code (`&8`): any 127.0.0.0/8 answer whose last octet has one of these bits. */
  readonly mask: number | null;
  /** The admin's word for it (`sbl`, `phishing`), shown in X-Nimbus-Report; null: the answer itself. */
  readonly meaning: string | null;
}

/** A list as NIMBUS_DNS_LISTS writes it; `weight` null: the weight of its kind (NIMBUS_WEIGHT_*). */
export interface DnsListEntry {
  readonly name: string;
  readonly zone: string;
  readonly kind: DnsListKind;
  /** Empty: every 127.0.0.0/8 answer that is not a refusal counts as listed. */
  readonly codes: readonly DnsListCode[];
  readonly weight: number | null;
}

/** A configured list with its weight decided. */
export interface DnsList extends DnsListEntry {
  readonly weight: number;
}

/** A process environment, or the same overlaid by the env file. */
export type Env = Readonly<Record<string, string | undefined>>;

export interface Config {
  /** Gateway SMTP listener. */
  readonly listen: HostPort;
  /** Next MTA; null delivers into `dataDir/maildir`. */
  readonly nextHop: HostPort | null;
  /** Recipient domains accepted from anyone (lower case). */
  readonly relayDomains: readonly string[];
  /** Clients that may relay anywhere and send XCLIENT/XFORWARD. */
  readonly trustedNetworks: readonly string[];
  readonly trustedBlockList: BlockList;
  readonly maxMessageSize: number;
  readonly maxRecipients: number;
  /**
   * Refused recipients a client outside trustedNetworks may have in one session: the last one's
   * refusal is followed by 421 and the connection is closed (Postfix's smtpd_hard_error_limit).
   * A message accepted from the session starts the count again.
   */
  readonly maxRefusedRecipients: number;
  readonly maxConnections: number;
  readonly socketTimeoutMs: number;
  /** Messages larger than this are spooled to disk instead of held in memory. */
  readonly spoolThreshold: number;
  readonly nextHopTimeoutMs: number;
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly hostname: string;
  readonly dataDir: string;
  readonly reputationUrl: string | null;
  readonly reputationKey: string | null;
  readonly lookupTimeoutMs: number;
  /** NIMBUS_UNKNOWN_CACHE_MS: how long service answers are cached while the convictions stream is down or not yet open. */
  readonly unknownCacheMs: number;
  /** The whole scan of one message (waiting for room, parsing, every check); past it: verdict unknown. */
  readonly scanTimeoutMs: number;
  /** Resolvers for every DNS check; empty: the system's (/etc/resolv.conf). */
  readonly dnsServers: readonly HostPort[];
  /** DNS time budget of one message, inside scanTimeoutMs. */
  readonly dnsTimeoutMs: number;
  /** SPF, DKIM, DMARC and ARC for every message (NIMBUS_AUTH_CHECKS). */
  readonly authChecks: boolean;
  /** Points of a DMARC failure under `p=reject`. */
  readonly dmarcRejectWeight: number;
  /** Points of a message the local statistical classifier gives P(spam) ≥ 0.99 (src/bayes). */
  readonly bayesWeight: number;
  /** Public DNS lists asked for every message; empty: none (the default). */
  readonly dnsLists: readonly DnsList[];
  readonly httpListen: HostPort;
  readonly store: StoreKind;
  /** One URL for a single Redis, several for Redis Cluster seed nodes. */
  readonly redisUrls: readonly string[];
  readonly upstreamUrl: string | null;
  readonly upstreamKey: string | null;
  readonly metricsListen: HostPort | null;
  readonly logLevel: LogLevel;
  readonly participation: ParticipationMode;
  readonly acceptStatement: boolean;
  readonly uploadBacklog: boolean;
  /** Statistics outbox bound (records waiting for upload); the oldest are dropped first, counted. */
  readonly outboxMaxRecords: number;
  /** Outbox records older than this many days are dropped (counted) instead of uploaded. */
  readonly outboxMaxAgeDays: number;
  /** Records per upload batch (the service accepts at most 5000). */
  readonly uploadBatchSize: number;
  /** Local statistics (for `nimbus stats`) are kept this many days. */
  readonly statsRetentionDays: number;
  /** The local message history (for the console) is kept this many days. */
  readonly historyRetentionDays: number;
  /** The history keeps subjects (personal data: off unless asked). */
  readonly historySubjects: boolean;
  readonly consoleListen: HostPort;
  /** An admin key at reputationUrl for the console; null: the console shows local data only. */
  readonly consoleAdminKey: string | null;
  /**
   * Largest attachment sample: the gateway (extended mode) captures unknown suspicious
   * attachments up to this size, the service accepts samples up to it. 0: no samples at all.
   */
  readonly sampleMaxBytes: number;
  /** Perceptual hashes kept per gateway process for images seen again (0: none kept). */
  readonly imageHashCache: number;
  /** Samples waiting for upload take at most this many bytes; past it the oldest are dropped (counted). */
  readonly sampleOutboxMaxBytes: number;
  readonly tagScore: number;
  readonly rejectScore: number;
  readonly spamAction: SpamAction;
  readonly subjectTag: string;
  readonly weights: Readonly<Record<FingerprintKind, number>>;
  readonly spamtraps: readonly string[];
  /** `nimbus gateway`'s worker processes. */
  readonly workers: number;
  /** `nimbus milter`'s: the same NIMBUS_WORKERS, whose `auto` leaves the MTA beside it half the cores. */
  readonly milterWorkers: number;
  /** `nimbus milter`'s listener. */
  readonly milterListen: ListenAddress;
  readonly milterQuarantine: MilterQuarantineMode;
  readonly milterOnError: MilterErrorAction;
  /** Env file re-read on SIGHUP (values in it win over the process environment). */
  readonly envFile: string | null;
}

export class ConfigError extends NimbusError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** The problems of a refused configuration (a reload's), for the `process.reload_failed` log line. */
export function reloadProblems(error: unknown): readonly string[] {
  return error instanceof ConfigError ? error.problems : [String(error)];
}
