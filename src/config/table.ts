/**
 * Every variable Nimbus reads, one entry each: its default, its parser, what it means and
 * whether it is a secret. The loader (loader.ts), `nimbus config` (print.ts) and the admin's page
 * docs/admin/configuration.md (docs.ts, `npm run docs:config`) are all driven by this table; the
 * order here is the order they show. Comments say why a default is what it is.
 */
import { hostname } from 'node:os';
import { maskApiKey, maskCredentials } from '../redact.js';
import {
  addressList, autoOr, cidrList, domainList, hostPort, listenAddress, number, oneOf, optional, pemFile, redisUrls, serviceUrl, size, text, yesNo, type Parser,
} from './parsers.js';
import { dnsLists, dnsServers } from './dns.js';
import { LOG_LEVELS, MILTER_ERROR_ACTIONS, MILTER_QUARANTINE_MODES, PARTICIPATION_MODES, SPAM_ACTIONS, STORES } from './types.js';

/** The parts of the admin's page, in its order. */
export const PARTS = Object.freeze({
  gateway: 'Gateway (SMTP relay)',
  milter: 'Milter (Postfix and Sendmail filter)',
  scan: 'Scan and policy',
  dns: 'DNS checks and public DNS lists',
  participation: 'Participation and statistics',
  service: 'Reputation service',
  console: 'Console and message history',
  files: 'Files',
  logging: 'Logging and metrics',
} as const);
export type Part = keyof typeof PARTS;

export interface Variable<T> {
  readonly part: Part;
  /**
   * What applies when the variable is unset or blank, written as an admin would write it (''
   * is "empty"); a function when it depends on the machine.
   */
  readonly default: string | (() => string);
  /** The default as the docs state it, when it depends on the machine. */
  readonly defaultDoc?: string;
  readonly parser: Parser<T>;
  /** One line for the admin (markdown). */
  readonly doc: string;
  /**
   * `key`: the whole value is a secret, shown as `nmb_<id>_***`. `url`: a password inside the URL
   * is, shown as `user:***@`. Every value shown anywhere goes through maskCredentials besides.
   */
  readonly secret?: 'key' | 'url';
  /** An empty value is a setting of its own rather than "the default". */
  readonly emptyIsValue?: boolean;
}

/** A value as it may be shown (errors, `nimbus config`): keys as `nmb_<id>_***`, URL passwords as `***`. */
export function shownValue(variable: Variable<unknown>, value: string): string {
  return variable.secret === 'key' && value.trim() !== '' ? maskApiKey(value) : maskCredentials(value);
}

/** Types an entry by its parser (the table's value types follow from it). */
const variable = <T>(entry: Variable<T>): Variable<T> => entry;

const weight = number({ min: 0, max: 1000 });

export const VARIABLES = Object.freeze({
  // ---------------------------------------------------------------- gateway
  NIMBUS_LISTEN: variable({
    part: 'gateway', default: '127.0.0.1:2525', parser: hostPort,
    doc: 'gateway SMTP address (the systemd unit sets `0.0.0.0:25`)',
  }),
  NIMBUS_NEXT_HOP: variable({
    part: 'gateway', default: '', parser: optional(hostPort),
    doc: '`host:port` of the next MTA; empty: deliver into `NIMBUS_DATA_DIR/maildir`',
  }),
  NIMBUS_RELAY_DOMAINS: variable({
    part: 'gateway', default: '', parser: domainList,
    doc: 'recipient domains accepted from anyone (comma-separated); others get `550 5.7.1`',
  }),
  NIMBUS_TRUSTED_NETWORKS: variable({
    part: 'gateway', default: '127.0.0.0/8,::1/128', parser: cidrList, emptyIsValue: true,
    doc: 'clients (CIDR, comma-separated) that may relay anywhere and send XCLIENT/XFORWARD; set but empty: no client is trusted',
  }),
  NIMBUS_HOSTNAME: variable({
    part: 'gateway', default: () => hostname() || 'localhost', defaultDoc: "the machine's hostname", parser: text({ trim: true }),
    // May be a short name; that is still what Postfix would use without myhostname.
    doc: 'name in the greeting and the `Received:` line',
  }),
  NIMBUS_MAX_MESSAGE_SIZE: variable({
    part: 'gateway', default: '25MB', parser: size(),
    doc: 'largest message, advertised with SIZE, enforced with `552 5.3.4`',
  }),
  NIMBUS_SPOOL_THRESHOLD: variable({
    part: 'gateway', default: '1MB', parser: size(),
    doc: 'messages above it are spooled to `NIMBUS_DATA_DIR/spool`, not held in memory',
  }),
  NIMBUS_MAX_RECIPIENTS: variable({
    part: 'gateway', default: '1000', parser: number({ min: 1, integer: true }),
    doc: 'recipients per transaction (more get `452 4.5.3`)',
  }),
  NIMBUS_MAX_REFUSED_RECIPIENTS: variable({
    part: 'gateway', default: '20', parser: number({ min: 1, integer: true }),
    // 20 as Postfix's smtpd_hard_error_limit: a dictionary attack is cut short, a sender's few typos are not.
    doc: 'refused recipients a client outside `NIMBUS_TRUSTED_NETWORKS` may have in a session: the last refusal is followed by `421 4.7.0` and a disconnect; an accepted message starts the count again',
  }),
  NIMBUS_MAX_CONNECTIONS: variable({
    part: 'gateway', default: '500', parser: number({ min: 1, integer: true }),
    doc: 'simultaneous SMTP connections per worker process',
  }),
  NIMBUS_SOCKET_TIMEOUT_MS: variable({
    part: 'gateway', default: '300000', parser: number({ min: 1000, integer: true }),
    doc: 'idle client connections are closed after it (ms)',
  }),
  NIMBUS_NEXT_HOP_TIMEOUT_MS: variable({
    part: 'gateway', default: '120000', parser: number({ min: 100, integer: true }),
    doc: 'budget of one whole exchange with the next hop (ms); past it the sender gets `451 4.4.1` and retries',
  }),
  NIMBUS_TLS_CERT: variable({
    part: 'gateway', default: '', parser: optional(pemFile),
    doc: 'PEM certificate; STARTTLS is offered when it and `NIMBUS_TLS_KEY` are set (both or neither)',
  }),
  NIMBUS_TLS_KEY: variable({ part: 'gateway', default: '', parser: optional(pemFile), doc: 'PEM private key of `NIMBUS_TLS_CERT`' }),
  NIMBUS_WORKERS: variable({
    // The milter's MTA runs on the same host and needs cores of its own; and every worker process
    // writes the same SQLite files, so each one's commits throw away the others' page caches. On 2
    // cores, `npm run bench -- milter` measured 1 worker at less CPU per message than 2 (BENCHMARKS, Milter).
    part: 'gateway', default: 'auto', parser: autoOr(number({ min: 1, max: 256, integer: true })),
    doc: 'gateway and milter worker processes sharing the listening socket (1: no supervisor); `auto`: the number of cores for `nimbus gateway`, half of them (at least 1) for `nimbus milter`',
  }),

  // ---------------------------------------------------------------- milter
  NIMBUS_MILTER_LISTEN: variable({
    part: 'milter', default: '127.0.0.1:11332', parser: listenAddress,
    // 11332: the port Rspamd's proxy uses for the same job, so a main.cf written for it needs no edit.
    doc: '`nimbus milter` address: `host:port`, or `unix:/path` (a socket of mode 0660 owned by the user and group the milter runs as; put it where the MTA can reach it)',
  }),
  NIMBUS_MILTER_QUARANTINE: variable({
    part: 'milter', default: 'mta', parser: oneOf(MILTER_QUARANTINE_MODES),
    doc: "where `NIMBUS_SPAM_ACTION=quarantine` puts a message: `mta` the MTA's hold queue (Postfix: `postqueue -p` shows it, `postsuper -H` releases it), `store` Nimbus's own quarantine (`nimbus quarantine`), the MTA discarding its copy",
  }),
  NIMBUS_MILTER_ON_ERROR: variable({
    part: 'milter', default: 'accept', parser: oneOf(MILTER_ERROR_ACTIONS),
    doc: "the milter's answer when Nimbus itself fails (scan error or timeout, internal error): `accept` lets the mail through with verdict `unknown`, `tempfail` makes the MTA answer `4xx` so the sender retries",
  }),

  // ---------------------------------------------------------------- scan and policy
  NIMBUS_TAG_SCORE: variable({
    part: 'scan', default: '5', parser: number({ min: 0 }),
    doc: 'at or above: the headers say spam (and the subject gets `NIMBUS_SUBJECT_TAG`)',
  }),
  NIMBUS_REJECT_SCORE: variable({
    part: 'scan', default: '15', parser: number({ min: 0 }),
    doc: 'at or above: `NIMBUS_SPAM_ACTION` applies; at least `NIMBUS_TAG_SCORE`',
  }),
  NIMBUS_SPAM_ACTION: variable({
    part: 'scan', default: 'tag', parser: oneOf(SPAM_ACTIONS),
    doc: '`tag`, `reject` (`550 5.7.1` at end of DATA), `quarantine` (kept locally, `250`) or `discard`',
  }),
  NIMBUS_SUBJECT_TAG: variable({
    part: 'scan', default: '', parser: text({ trim: false }),
    doc: 'e.g. `[SPAM]`, put in front of the subject of spam',
  }),
  // Points a kind adds when its reputation is spam (times the reputation score in [0, 1]); ham
  // subtracts likewise. The sender's address and network are a tie-breaker, not evidence (0.75 +
  // 0.25): a mailing list or forwarder relays spam and ham alike from one IP, and what a trap or
  // a report says about a message is said about its relay too. With ip 4 + net 2 (and with 3 + 1,
  // next to the list's own footer link) the evaluation tagged list-relayed ham by the hundred,
  // and 1 + 0.5 still tipped that footer link (3.5) to exactly the tag score. Where no ham report
  // is itself evidence (an address labelled spam in many messages, never ham, and labelled at
  // least as often as seen: an admin's history; not in list mail), both grow with the labelled
  // messages, one weight per two, up to six times, and a link up to 1.2 times (src/scan/score.ts,
  // effectiveWeight; issue 19).
  NIMBUS_WEIGHT_IP: variable({
    part: 'scan', default: '0.75', parser: weight,
    doc: 'points of the sending IP address when its reputation is spam (times its score in [0, 1]; ham subtracts): a tie-breaker only, list servers and forwarders relay spam and ham from one address. An address labelled spam in many distinct messages, never ham, and labelled at least as often as seen (an admin\'s history), outside list mail, counts one weight more per two such messages, up to six times',
  }),
  NIMBUS_WEIGHT_NET: variable({
    part: 'scan', default: '0.25', parser: weight,
    doc: "points of the sending address's network, likewise a tie-breaker, and likewise growing with labelled spam and no ham",
  }),
  NIMBUS_WEIGHT_ATTACHMENT: variable({ part: 'scan', default: '8', parser: weight, doc: 'points of an attachment' }),
  NIMBUS_WEIGHT_IMAGE: variable({ part: 'scan', default: '8', parser: weight, doc: 'points of an image (perceptual hash)' }),
  NIMBUS_WEIGHT_URL: variable({ part: 'scan', default: '4', parser: weight, doc: 'points of a linked URL; one labelled spam in many distinct messages and never ham, outside list mail, counts up to 1.2 times this' }),
  // The strongest content evidence, a near-duplicate of a whole text the network convicted (an
  // image hash can be a stock template that ham shares: the evaluation's one false positive), and
  // the weight that lets text spam be acted on: a trusted conviction (a trap hit, an admin's
  // report) answers 6/7, and 6/7 of 18 is 15.4, the reject score. At 6, text-only spam the
  // network had convicted peaked at 11 and only image spam could ever be rejected (npm run eval:
  // 0.08% of caught text-only copies reached 15). Ham's text was never judged spam in the
  // evaluation, so this moves what is rejected, not the false positives; a conviction by three
  // ordinary reporters (3/4) gives 13.5: tagged, rejected with one more kind.
  NIMBUS_WEIGHT_BODY: variable({ part: 'scan', default: '18', parser: weight, doc: 'points of the body text: a trusted conviction (6/7) alone reaches the default reject score' }),
  // As strong as the text: a domain that proved itself (DKIM, SPF, DMARC) is the sender itself,
  // not something it borrowed; a campaign on its own throwaway domain is caught by that domain
  // alone once it is known as spam, and a good name earns a sender as much back.
  NIMBUS_WEIGHT_DOMAIN: variable({
    part: 'scan', default: '6', parser: weight,
    doc: 'points of an authenticated sender domain (`domain:dkim`, `domain:spf`, `domain:dmarc`; needs `NIMBUS_AUTH_CHECKS=on`)',
  }),
  // Below the tag score on its own: a p=reject failure is often a forwarder or a mailing list
  // that broke a real signature, so it tips a message that has other evidence against it and
  // rejects nothing by itself (Nimbus never rejects on DMARC alone unless the scores say so).
  NIMBUS_WEIGHT_DMARC_REJECT: variable({
    part: 'scan', default: '4', parser: weight,
    doc: 'points of a DMARC failure of a From domain whose policy is `p=reject` (`tests=NIMBUS_DMARC_REJECT`); to reject on it alone, make it at least `NIMBUS_REJECT_SCORE`',
  }),
  // The local statistical classifier (src/bayes, docs/design/bayes.md), learnt only by `nimbus
  // learn` and silent below 200 spam and 200 ham learnt. At the tag score a P(spam) ≥ 0.99 tags
  // a message alone: in the day-one eval (npm run eval -- --history-split 0.5) no newer ham of
  // 1479 reached 0.99 (3 reached 0.95), while 138 of 905 newer spam did.
  NIMBUS_WEIGHT_BAYES: variable({
    part: 'scan', default: '5', parser: weight,
    doc: 'points of a message the local statistical classifier, learnt with `nimbus learn` (at least 200 spam and 200 ham), gives a probability of spam of 0.99 or more (`tests=NIMBUS_BAYES_SPAM`); `0`: the classifier is not used. Its counts never leave the host',
  }),
  NIMBUS_SPAMTRAPS: variable({
    part: 'scan', default: '', parser: addressList,
    doc: 'trap addresses (comma-separated): mail to them is reported as spam and never delivered',
  }),
  NIMBUS_LOOKUP_TIMEOUT_MS: variable({
    part: 'scan', default: '300', parser: number({ min: 1, integer: true }),
    doc: 'budget of a lookup at the reputation service (ms); past it the gateway goes on with local data',
  }),
  NIMBUS_UNKNOWN_CACHE_MS: variable({
    part: 'scan', default: '10000', parser: number({ min: 0, max: 3_600_000, integer: true }),
    // Kept a minute with nothing to drop them, a campaign's first `unknown` answers hid its
    // conviction for a minute (issue 21). While the convictions stream is up, answers stay 60 s
    // (a proxy: 5 min): it drops those whose verdict changed and their fuzzy near neighbours.
    doc: 'how long a gateway (and a proxy) keeps the reputation service\'s answers while the convictions stream is down or not yet open (ms); while it is up they are kept 60 s (a proxy: 5 min) and dropped as soon as the stream says their verdict, or a near neighbour\'s, changed; `0`: not kept',
  }),
  NIMBUS_SCAN_TIMEOUT_MS: variable({
    part: 'scan', default: '10000', parser: number({ min: 1, integer: true }),
    // Far above a scan's usual tens of milliseconds (a queue of image messages under load takes
    // seconds), far below what senders and Postfix wait for an answer (smtpd_proxy_timeout,
    // milter_content_timeout): a stuck scan never turns into a sender's timeout and retry.
    doc: 'budget of a whole scan (waiting for room to analyse, parsing, every check; ms); past it the message goes on with verdict `unknown` and `tests=NIMBUS_SCAN_TIMEOUT`',
  }),
  NIMBUS_IMAGE_HASH_CACHE: variable({
    part: 'scan', default: '10000', parser: number({ min: 0, max: 10_000_000, integer: true }),
    // ~3 MB per 10,000 hashes: a signature logo or a campaign's picture is decoded once per worker.
    doc: 'perceptual hashes kept per worker for images seen again (by their SHA-256), so a logo or a campaign\'s picture is decoded once; `0`: every image is decoded',
  }),

  // ---------------------------------------------------------------- DNS checks and public DNS lists
  NIMBUS_DNS_SERVERS: variable({
    part: 'dns', default: '', defaultDoc: "the system's (`/etc/resolv.conf`)", parser: dnsServers,
    // Addresses only: a resolver cannot be found by name without a resolver.
    doc: 'resolvers for every DNS check (public DNS lists; SPF, DKIM, DMARC and ARC), comma-separated `address[:port]`, e.g. `127.0.0.1:53,[::1]:53`; run your own (unbound): most lists refuse queries from public resolvers',
  }),
  NIMBUS_DNS_TIMEOUT_MS: variable({
    part: 'dns', default: '1000', parser: number({ min: 1, integer: true }),
    // A DNSBL answers in tens of milliseconds from a nearby resolver; one second leaves room for a
    // lost UDP packet's retry, and stays well inside the scan's budget (10 s by default).
    doc: 'DNS budget of one message (ms), less than `NIMBUS_SCAN_TIMEOUT_MS` when lists or authentication checks are on, and never more than the scan has left: the authentication checks share one (from the start of the scan), the lists another (from the end of parsing); past it what is not yet answered counts as `temperror`, never as listed or failed, and mail goes on',
  }),
  // Off by default: the checks are only right on the real client address (Nimbus as the border
  // MTA, or XCLIENT/XFORWARD from a trusted one), and they ask the DNS for every message, which
  // wants a resolver of the admin's own (NIMBUS_DNS_SERVERS). Wrongly on, every SPF check of a
  // gateway behind another MTA fails, and DMARC with it.
  NIMBUS_AUTH_CHECKS: variable({
    part: 'dns', default: 'off', parser: yesNo,
    doc: '`on`: SPF, DKIM, DMARC and ARC for every message, written to `Authentication-Results` and scored (docs/admin/authentication.md); only where Nimbus sees the real client address (it is the border MTA, or a trusted MTA passes it by XCLIENT/XFORWARD)',
  }),
  NIMBUS_DNS_LISTS: variable({
    part: 'dns', default: '', parser: dnsLists,
    doc: 'public DNS lists asked for every message, comma-separated `name:zone:kind[:codes][:weight]` (kind `ip`, `ip4`, `domain`, `sha256` or `sha256-base32`); empty: none. Each query tells the list\'s operator an address, a domain or a hash: see docs/admin/dns-lists.md',
  }),

  // ---------------------------------------------------------------- participation and statistics
  NIMBUS_PARTICIPATION: variable({
    part: 'participation', default: 'off', parser: oneOf(PARTICIPATION_MODES),
    doc: '`off` (nothing leaves this host), `standard` or `extended`: see `nimbus statement`',
  }),
  NIMBUS_ACCEPT_STATEMENT: variable({
    part: 'participation', default: 'no', parser: yesNo,
    doc: 'must be `yes` for `standard` or `extended`, once you have read `nimbus statement`',
  }),
  NIMBUS_UPLOAD_BACKLOG: variable({
    part: 'participation', default: 'yes', parser: yesNo,
    doc: 'on opting in, upload the statistics gathered while off (`no`: start fresh)',
  }),
  NIMBUS_REPUTATION_URL: variable({
    part: 'participation', default: '', parser: optional(serviceUrl('NIMBUS_REPUTATION_KEY')), secret: 'url',
    doc: 'the reputation service (`http://` or `https://`, no `user:password@`, no query); needed to participate',
  }),
  NIMBUS_REPUTATION_KEY: variable({
    part: 'participation', default: '', parser: optional(text({ trim: true })), secret: 'key',
    doc: "this gateway's key at the service (role reporter, so that reports and traps count as feedback)",
  }),
  NIMBUS_OUTBOX_MAX_RECORDS: variable({
    part: 'participation', default: '1000000', parser: number({ min: 1, integer: true }),
    doc: 'statistics records waiting for upload; past it the oldest are dropped (counted in `nimbus stats`)',
  }),
  NIMBUS_OUTBOX_MAX_AGE_DAYS: variable({
    part: 'participation', default: '30', parser: number({ min: 0.001 }),
    doc: 'waiting records older than this many days are dropped (counted)',
  }),
  // The service accepts at most 5000 records per request.
  NIMBUS_UPLOAD_BATCH_SIZE: variable({
    part: 'participation', default: '500', parser: number({ min: 1, max: 5000, integer: true }),
    doc: 'records per upload request (at most 5000)',
  }),
  NIMBUS_STATS_RETENTION_DAYS: variable({
    part: 'participation', default: '90', parser: number({ min: 1 }),
    doc: 'local statistics for `nimbus stats` are kept this many days',
  }),
  NIMBUS_SAMPLE_MAX_BYTES: variable({
    part: 'participation', default: '1MB',
    // 10 MB: the gateway analyses no larger message, so no larger attachment could be captured.
    parser: size({ zeroSwitchesOff: true, max: 10 * 1024 * 1024 }),
    doc: 'largest attachment sample: the gateway captures (extended only) and the reputation service accepts samples up to it (`413` above); at most `10MB`; `0`: no samples',
  }),
  NIMBUS_SAMPLE_OUTBOX_MAX_BYTES: variable({
    part: 'participation', default: '64MB', parser: size(),
    doc: 'attachment samples waiting for upload (extended only); past it the oldest are dropped (counted)',
  }),

  // ---------------------------------------------------------------- reputation service
  NIMBUS_HTTP_LISTEN: variable({ part: 'service', default: '127.0.0.1:8787', parser: hostPort, doc: 'address of `nimbus reputation` (HTTP API)' }),
  NIMBUS_STORE: variable({ part: 'service', default: 'sqlite', parser: oneOf(STORES), doc: '`sqlite` (in `NIMBUS_DATA_DIR`) or `redis`' }),
  NIMBUS_REDIS_URL: variable({
    part: 'service', default: 'redis://127.0.0.1:6379', parser: redisUrls, secret: 'url',
    doc: 'one Redis (`redis://` or `rediss://`), or a comma-separated list of Redis Cluster nodes',
  }),
  NIMBUS_UPSTREAM_URL: variable({
    part: 'service', default: '', parser: optional(serviceUrl('NIMBUS_UPSTREAM_KEY')), secret: 'url',
    doc: 'proxy mode: answer from local data, forward misses (and, as `NIMBUS_PARTICIPATION` allows, reports) to this service',
  }),
  NIMBUS_UPSTREAM_KEY: variable({
    part: 'service', default: '', parser: optional(text({ trim: true })), secret: 'key',
    doc: "this service's key at the upstream service",
  }),

  // ---------------------------------------------------------------- console and message history
  NIMBUS_HISTORY_RETENTION_DAYS: variable({
    part: 'console', default: '30', parser: number({ min: 1 }),
    doc: 'the local message history (per message: client, envelope sender, verdict, fingerprints; shown by `nimbus console`, never uploaded) is kept this many days',
  }),
  NIMBUS_HISTORY_SUBJECTS: variable({
    part: 'console', default: 'no', parser: yesNo,
    // Subjects are personal data: kept only when the admin chooses to.
    doc: '`yes`: the message history also keeps each subject',
  }),
  NIMBUS_CONSOLE_LISTEN: variable({
    part: 'console', default: '127.0.0.1:8025', parser: hostPort,
    doc: '`nimbus console` address (put TLS in front of it, or keep it on loopback)',
  }),
  NIMBUS_CONSOLE_ADMIN_KEY: variable({
    part: 'console', default: '', parser: optional(text({ trim: true })), secret: 'key',
    doc: "an admin key at `NIMBUS_REPUTATION_URL`: the console then shows the service's evidence, overrides there, and manages its keys",
  }),

  // ---------------------------------------------------------------- files
  NIMBUS_DATA_DIR: variable({
    part: 'files', default: './data', parser: text({ trim: false }),
    doc: 'local store: statistics, outbox, quarantine, embedded reputation, Maildir, spool (the systemd units set `/var/lib/nimbus`)',
  }),
  NIMBUS_ENV_FILE: variable({
    part: 'files', default: '', parser: optional(text({ trim: true })),
    doc: 'env file read at start and again on SIGHUP; its values win over the process environment (the systemd units set `/etc/nimbus/nimbus.env`)',
  }),

  // ---------------------------------------------------------------- logging and metrics
  NIMBUS_LOG_LEVEL: variable({
    part: 'logging', default: 'info', parser: oneOf(LOG_LEVELS),
    doc: 'pino level (`fatal` … `trace`, `silent`); JSON lines on stdout, journald under systemd',
  }),
  NIMBUS_METRICS_LISTEN: variable({
    part: 'logging', default: '', parser: optional(hostPort),
    doc: "the gateway's Prometheus endpoint, e.g. `127.0.0.1:9325`; empty: none",
  }),
});

export type VariableName = keyof typeof VARIABLES;
type ValueOf<V> = V extends Variable<infer T> ? T : never;
/** Each variable's parsed value, by name. */
export type Values = { readonly [N in VariableName]: ValueOf<(typeof VARIABLES)[N]> };
