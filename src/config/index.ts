/**
 * Configuration: environment variables only, parsed once at the edge into a frozen, typed object.
 *
 * Every setting is documented here, where it is defined (and mirrored in README.md and
 * systemd/nimbus.env). A wrong value stops the process with the variable's name, the value and
 * what is allowed; all wrong values are reported at once, not one per restart.
 */
import { readFileSync, existsSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { NimbusError } from '../errors.js';
import { maskApiKey, maskCredentials, maskUrl } from '../redact.js';

export const FINGERPRINT_KINDS = ['ip', 'net', 'attachment', 'image', 'url', 'body'] as const;
export type FingerprintKind = (typeof FINGERPRINT_KINDS)[number];

export const SPAM_ACTIONS = ['tag', 'reject', 'quarantine', 'discard'] as const;
export type SpamAction = (typeof SPAM_ACTIONS)[number];

export const PARTICIPATION_MODES = ['off', 'standard', 'extended'] as const;
export type ParticipationMode = (typeof PARTICIPATION_MODES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

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
  /** The whole scan of one message (waiting for room, parsing, every check); past it: verdict unknown. */
  readonly scanTimeoutMs: number;
  readonly httpListen: HostPort;
  readonly store: 'sqlite' | 'redis';
  /** One URL for a single Redis, several for Redis Cluster seed nodes. */
  readonly redisUrls: readonly string[];
  readonly upstreamUrl: string | null;
  readonly upstreamKey: string | null;
  readonly metricsListen: HostPort | null;
  readonly logLevel: (typeof LOG_LEVELS)[number];
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
  readonly workers: number;
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

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, K: 1024, MB: 1024 ** 2, M: 1024 ** 2, GB: 1024 ** 3, G: 1024 ** 3 };

/** Parses `25MB`, `512KB`, `1048576` into bytes. */
export function parseSize(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!match) return null;
  const unit = SIZE_UNITS[(match[2] ?? '').toUpperCase()];
  if (unit === undefined) return null;
  return Math.floor(Number(match[1]) * unit);
}

/** Parses `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort(text: string): HostPort | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[3]);
  if (port > 65535) return null;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Adds `a.b.c.d/n` or `v6/n` (or a bare address) to a BlockList; false when malformed. */
export function addCidr(list: BlockList, cidr: string): boolean {
  const [address, prefixText] = cidr.split('/');
  if (!address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const maxPrefix = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) return false;
  list.addSubnet(address, prefix, type);
  return true;
}

/** True when `address` (IPv4, IPv6 or IPv4-mapped IPv6) is inside the list. */
export function inBlockList(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const plain = mapped?.[1] ?? address;
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Reads `KEY=VALUE` lines (systemd EnvironmentFile syntax: comments, optional quotes). */
export function readEnvFile(path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const rawLine of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value.startsWith('"') || value.startsWith("'")) && value.endsWith(value[0]!)) {
      value = value.slice(1, -1);
    }
    values[key] = value;
  }
  return values;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The environment the process runs with: the process environment, overlaid by the env file
 * named in NIMBUS_ENV_FILE. The file wins so that SIGHUP after editing it takes effect even
 * though systemd loaded the old values into the process environment at start.
 */
export function effectiveEnv(processEnv: Env = process.env): Env {
  const envFile = processEnv.NIMBUS_ENV_FILE;
  if (!envFile) return processEnv;
  if (!existsSync(envFile)) {
    throw new ConfigError([`NIMBUS_ENV_FILE=${JSON.stringify(envFile)}: file not found`]);
  }
  return { ...processEnv, ...readEnvFile(envFile) };
}

/** Parses and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(processEnv: Env = process.env): Config {
  const env = effectiveEnv(processEnv);
  const problems: string[] = [];
  // The value is echoed to say what was wrong, never with a password in it.
  const bad = (name: string, allowed: string, shown = env[name]): void => {
    problems.push(`${name}=${JSON.stringify(shown === undefined ? shown : maskCredentials(shown))}: expected ${allowed}`);
  };
  const str = (name: string, fallback: string): string => env[name] ?? fallback;
  const optional = (name: string): string | null => {
    const value = env[name]?.trim();
    return value ? value : null;
  };
  const num = (name: string, fallback: number, options: { min?: number; max?: number; integer?: boolean } = {}): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const value = Number(raw.trim());
    const { min = -Infinity, max = Infinity, integer = false } = options;
    const describe = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      bad(name, describe);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    bad(name, `one of ${allowed.join(', ')}`);
    return fallback;
  };
  const yesNo = (name: string, fallback: boolean): boolean => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['yes', 'true', '1', 'on'].includes(raw)) return true;
    if (['no', 'false', '0', 'off'].includes(raw)) return false;
    bad(name, 'yes or no');
    return fallback;
  };
  const hostPort = (name: string, fallback: string | null): HostPort | null => {
    const raw = env[name]?.trim() || fallback;
    if (!raw) return null;
    const parsed = parseHostPort(raw);
    if (!parsed) bad(name, 'host:port (e.g. 127.0.0.1:2525 or [::1]:2525)');
    return parsed;
  };
  const size = (name: string, fallback: string): number => {
    const raw = env[name]?.trim() || fallback;
    const parsed = parseSize(raw);
    if (parsed === null || parsed <= 0) {
      bad(name, 'a size such as 25MB, 512KB or a number of bytes');
      return parseSize(fallback)!;
    }
    return parsed;
  };
  /** Like size(), but 0 is allowed (it switches the feature off). */
  const sizeOrZero = (name: string, fallback: string, max: number): number => {
    const raw = env[name]?.trim() || fallback;
    const parsed = parseSize(raw);
    if (parsed === null || parsed > max) {
      bad(name, `a size such as 1MB, 512KB, a number of bytes, or 0; at most ${max} bytes`);
      return parseSize(fallback)!;
    }
    return parsed;
  };
  /**
   * A service's base URL. The client authenticates with a Bearer key and appends `/v1/...` to
   * this, so `user:password@` (node-fetch refuses such a URL, every request would fail) and a
   * query or fragment are refused here rather than at the first request.
   */
  const url = (name: string, keyName: string): string | null => {
    const raw = optional(name);
    if (raw === null) return null;
    if (!isUrlOf(raw, ['http:', 'https:'])) {
      bad(name, 'an http:// or https:// URL');
      return null;
    }
    const parsed = new URL(raw);
    if (parsed.username !== '' || parsed.password !== '') {
      problems.push(`${name}=${JSON.stringify(maskCredentials(parsed.href))}: credentials in the URL are not used; remove user:password@ from it and put the service's key in ${keyName} (sent as Authorization: Bearer)`);
      return null;
    }
    if (parsed.search !== '' || parsed.hash !== '' || raw.includes('?') || raw.includes('#')) {
      bad(name, 'a base URL without ?query or #fragment (request paths are appended to it)');
      return null;
    }
    return raw.replace(/\/+$/, '');
  };

  const trustedNetworks = list(env.NIMBUS_TRUSTED_NETWORKS ?? '127.0.0.0/8,::1/128');
  const trustedBlockList = new BlockList();
  for (const cidr of trustedNetworks) {
    if (!addCidr(trustedBlockList, cidr)) {
      bad('NIMBUS_TRUSTED_NETWORKS', `comma-separated CIDR networks such as 127.0.0.0/8,::1/128 (bad entry ${JSON.stringify(cidr)})`);
    }
  }

  const relayDomains = list(env.NIMBUS_RELAY_DOMAINS).map((domain) => domain.toLowerCase());
  for (const domain of relayDomains) {
    if (!/^[a-z0-9*]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(domain) && !/^[^\s@]+$/.test(domain)) {
      bad('NIMBUS_RELAY_DOMAINS', 'comma-separated domain names');
    }
  }

  const spamtraps = list(env.NIMBUS_SPAMTRAPS).map((address) => address.toLowerCase());
  for (const address of spamtraps) {
    if (!/^[^\s@]+@[^\s@]+$/.test(address)) bad('NIMBUS_SPAMTRAPS', `comma-separated e-mail addresses (bad entry ${JSON.stringify(address)})`);
  }

  const tlsCert = optional('NIMBUS_TLS_CERT');
  const tlsKey = optional('NIMBUS_TLS_KEY');
  if ((tlsCert === null) !== (tlsKey === null)) {
    problems.push('NIMBUS_TLS_CERT and NIMBUS_TLS_KEY: set both or neither');
  }
  for (const [name, path] of [['NIMBUS_TLS_CERT', tlsCert], ['NIMBUS_TLS_KEY', tlsKey]] as const) {
    if (path !== null && !existsSync(path)) bad(name, 'a readable PEM file (file not found)');
  }

  // The sender's address and network are a tie-breaker, not evidence (0.75 + 0.25): a mailing list or
  // forwarder relays spam and ham alike from one IP, and what a trap or a report says about a
  // message is said about its relay too. With ip 4 + net 2 (and with 3 + 1, next to the list's
  // own footer link) the evaluation tagged list-relayed ham by the hundred, and 1 + 0.5 still
  // tipped that footer link (3.5) to exactly the tag score.
  const weightDefaults: Record<FingerprintKind, number> = { ip: 0.75, net: 0.25, attachment: 8, image: 8, url: 4, body: 6 };
  const weights = Object.fromEntries(
    FINGERPRINT_KINDS.map((kind) => [kind, num(`NIMBUS_WEIGHT_${kind.toUpperCase()}`, weightDefaults[kind], { min: 0, max: 1000 })]),
  ) as Record<FingerprintKind, number>;

  const redisUrls = list(env.NIMBUS_REDIS_URL ?? 'redis://127.0.0.1:6379').map((item) => (item.includes('://') ? item : `redis://${item}`));
  for (const item of redisUrls) {
    // Shown with the scheme added, so that a password in a scheme-less entry is masked too.
    if (!isUrlOf(item, ['redis:', 'rediss:'])) bad('NIMBUS_REDIS_URL', 'redis://host:port, or a comma-separated list of cluster nodes', redisUrls.join(','));
  }

  const participation = oneOf('NIMBUS_PARTICIPATION', PARTICIPATION_MODES, 'off');
  const acceptStatement = yesNo('NIMBUS_ACCEPT_STATEMENT', false);
  const reputationUrl = url('NIMBUS_REPUTATION_URL', 'NIMBUS_REPUTATION_KEY');
  if (participation !== 'off' && !acceptStatement) {
    problems.push(
      `NIMBUS_PARTICIPATION=${participation} needs NIMBUS_ACCEPT_STATEMENT=yes: read what is sent with \`nimbus statement\`, then set NIMBUS_ACCEPT_STATEMENT=yes to accept it (or NIMBUS_PARTICIPATION=off)`,
    );
  }
  if (participation !== 'off' && reputationUrl === null) {
    problems.push(`NIMBUS_PARTICIPATION=${participation} needs NIMBUS_REPUTATION_URL: the reputation service to exchange with`);
  }

  const tagScore = num('NIMBUS_TAG_SCORE', 5, { min: 0 });
  const rejectScore = num('NIMBUS_REJECT_SCORE', 15, { min: 0 });
  if (rejectScore < tagScore) {
    problems.push(`NIMBUS_REJECT_SCORE=${rejectScore}: expected a number >= NIMBUS_TAG_SCORE (${tagScore})`);
  }

  const config: Config = {
    listen: hostPort('NIMBUS_LISTEN', '127.0.0.1:2525') ?? { host: '127.0.0.1', port: 2525 },
    nextHop: hostPort('NIMBUS_NEXT_HOP', null),
    relayDomains,
    trustedNetworks,
    trustedBlockList,
    maxMessageSize: size('NIMBUS_MAX_MESSAGE_SIZE', '25MB'),
    maxRecipients: num('NIMBUS_MAX_RECIPIENTS', 1000, { min: 1, integer: true }),
    maxRefusedRecipients: num('NIMBUS_MAX_REFUSED_RECIPIENTS', 20, { min: 1, integer: true }),
    maxConnections: num('NIMBUS_MAX_CONNECTIONS', 500, { min: 1, integer: true }),
    socketTimeoutMs: num('NIMBUS_SOCKET_TIMEOUT_MS', 300_000, { min: 1000, integer: true }),
    spoolThreshold: size('NIMBUS_SPOOL_THRESHOLD', '1MB'),
    nextHopTimeoutMs: num('NIMBUS_NEXT_HOP_TIMEOUT_MS', 120_000, { min: 100, integer: true }),
    tls: tlsCert && tlsKey ? { cert: tlsCert, key: tlsKey } : null,
    hostname: str('NIMBUS_HOSTNAME', '').trim() || defaultHostname(),
    dataDir: str('NIMBUS_DATA_DIR', './data'),
    reputationUrl,
    reputationKey: optional('NIMBUS_REPUTATION_KEY'),
    lookupTimeoutMs: num('NIMBUS_LOOKUP_TIMEOUT_MS', 300, { min: 1, integer: true }),
    // Far above a scan's usual tens of milliseconds (a queue of image messages under load takes
    // seconds), far below what senders and Postfix wait for an answer (smtpd_proxy_timeout,
    // milter_content_timeout): a stuck scan never turns into a sender's timeout and retry.
    scanTimeoutMs: num('NIMBUS_SCAN_TIMEOUT_MS', 10_000, { min: 1, integer: true }),
    httpListen: hostPort('NIMBUS_HTTP_LISTEN', '127.0.0.1:8787') ?? { host: '127.0.0.1', port: 8787 },
    store: oneOf('NIMBUS_STORE', ['sqlite', 'redis'] as const, 'sqlite'),
    redisUrls,
    upstreamUrl: url('NIMBUS_UPSTREAM_URL', 'NIMBUS_UPSTREAM_KEY'),
    upstreamKey: optional('NIMBUS_UPSTREAM_KEY'),
    metricsListen: hostPort('NIMBUS_METRICS_LISTEN', null),
    logLevel: oneOf('NIMBUS_LOG_LEVEL', LOG_LEVELS, 'info'),
    participation,
    acceptStatement,
    uploadBacklog: yesNo('NIMBUS_UPLOAD_BACKLOG', true),
    outboxMaxRecords: num('NIMBUS_OUTBOX_MAX_RECORDS', 1_000_000, { min: 1, integer: true }),
    outboxMaxAgeDays: num('NIMBUS_OUTBOX_MAX_AGE_DAYS', 30, { min: 0.001 }),
    uploadBatchSize: num('NIMBUS_UPLOAD_BATCH_SIZE', 500, { min: 1, max: 5000, integer: true }),
    statsRetentionDays: num('NIMBUS_STATS_RETENTION_DAYS', 90, { min: 1 }),
    // 10 MB: the gateway analyses no larger message, so no larger attachment could be captured.
    sampleMaxBytes: sizeOrZero('NIMBUS_SAMPLE_MAX_BYTES', '1MB', 10 * 1024 * 1024),
    sampleOutboxMaxBytes: size('NIMBUS_SAMPLE_OUTBOX_MAX_BYTES', '64MB'),
    imageHashCache: num('NIMBUS_IMAGE_HASH_CACHE', 10_000, { min: 0, max: 10_000_000, integer: true }),
    tagScore,
    rejectScore,
    spamAction: oneOf('NIMBUS_SPAM_ACTION', SPAM_ACTIONS, 'tag'),
    subjectTag: str('NIMBUS_SUBJECT_TAG', ''),
    weights: Object.freeze(weights),
    spamtraps,
    workers: num('NIMBUS_WORKERS', availableParallelism(), { min: 1, max: 256, integer: true }),
    envFile: processEnv.NIMBUS_ENV_FILE ?? null,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

export interface ReloadedConfig {
  readonly config: Config;
  /** Participation was forced off because the edit withdrew consent but was otherwise invalid. */
  readonly consentWithdrawn: boolean;
}

/**
 * The configuration to apply on SIGHUP. Like loadConfig, except that withdrawing consent always
 * takes effect (DESIGN: opting out, or withdrawing acceptance, stops every exchange at once):
 * `NIMBUS_ACCEPT_STATEMENT=no` with `standard` still set is refused at start, but on a running
 * gateway keeping the old, consenting configuration would go on sending. So when the edited
 * environment is valid with participation off, that is what applies.
 */
export function loadConfigForReload(processEnv: Env = process.env): ReloadedConfig {
  try {
    return { config: loadConfig(processEnv), consentWithdrawn: false };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const env = effectiveEnv(processEnv);
    const accepted = ['yes', 'true', '1', 'on'].includes(env.NIMBUS_ACCEPT_STATEMENT?.trim().toLowerCase() ?? '');
    const mode = env.NIMBUS_PARTICIPATION?.trim().toLowerCase() ?? 'off';
    if (accepted || mode === 'off' || mode === '') throw error;
    let config: Config;
    try {
      // The env file is already folded into `env`; pass its name on for the next reload only.
      config = loadConfig({ ...env, NIMBUS_ENV_FILE: undefined, NIMBUS_PARTICIPATION: 'off' });
    } catch {
      throw error;
    }
    return { config: Object.freeze({ ...config, envFile: processEnv.NIMBUS_ENV_FILE ?? null }), consentWithdrawn: true };
  }
}

function defaultHostname(): string {
  // May be a short name; that is still what Postfix would use without myhostname.
  return hostname() || 'localhost';
}

/**
 * The effective configuration with secrets masked, for `nimbus config` (src/redact.ts): URL
 * passwords as `user:***@`, keys as `nmb_<id>_***` so that the id can be matched against
 * `nimbus keys list`.
 */
export function printableConfig(config: Config): Record<string, unknown> {
  const { trustedBlockList: _omit, ...rest } = config;
  const key = (value: string | null): string | null => (value === null ? null : maskApiKey(value));
  return {
    ...rest,
    reputationUrl: maskUrl(config.reputationUrl),
    upstreamUrl: maskUrl(config.upstreamUrl),
    redisUrls: config.redisUrls.map(maskCredentials),
    reputationKey: key(config.reputationKey),
    upstreamKey: key(config.upstreamKey),
  };
}

/**
 * Whether `raw` is an absolute URL with one of these schemes and a host. WHATWG URL rather than
 * zod: the gateway's supervisor loads this module and nothing else heavy (zod is ~12 MB of it).
 */
function isUrlOf(raw: string, protocols: readonly string[]): boolean {
  try {
    const url = new URL(raw);
    return protocols.includes(url.protocol) && url.hostname !== '';
  } catch {
    return false;
  }
}
