/**
 * The environment (and the env file NIMBUS_ENV_FILE names) → a frozen, typed `Config`, once, at
 * the edge. Every variable of the table is parsed by its parser; every wrong value is reported
 * at once with the variable's name, the value (masked) and what is allowed, not one per restart.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { blockListOf, YES } from './parsers.js';
import { shownValue, VARIABLES, type Values, type Variable, type VariableName } from './table.js';
import { ConfigError, type Config, type DnsListKind, type Env, type FingerprintKind } from './types.js';

/**
 * A listed answer counts like a spam answer of the kind the list is about, so a list entry
 * without its own weight takes that kind's NIMBUS_WEIGHT_*.
 */
const LIST_KIND_WEIGHT: Readonly<Record<DnsListKind, FingerprintKind>> = Object.freeze({
  ip: 'ip',
  ip4: 'ip',
  domain: 'url',
  sha256: 'attachment',
  'sha256-base32': 'attachment',
});

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

/**
 * The environment the process runs with: the process environment, overlaid by the env file
 * named in NIMBUS_ENV_FILE. The file wins so that SIGHUP after editing it takes effect even
 * though systemd loaded the old values into the process environment at start. NIMBUS_ENV_FILE
 * itself stays the process's: the file does not name another file.
 */
export function effectiveEnv(processEnv: Env = process.env): Env {
  const envFile = processEnv.NIMBUS_ENV_FILE;
  if (!envFile) return processEnv;
  if (!existsSync(envFile)) {
    throw new ConfigError([`NIMBUS_ENV_FILE=${JSON.stringify(envFile)}: file not found`]);
  }
  return { ...processEnv, ...readEnvFile(envFile), NIMBUS_ENV_FILE: envFile };
}

/**
 * Each variable of the table parsed from `env`. A wrong value is added to `problems`, its name to
 * `failed`, and its default stands in (the result is thrown away, but stays well-typed).
 */
function readValues(env: Env, problems: string[], failed: Set<VariableName>): Values {
  const values: Record<string, unknown> = {};
  for (const [name, variable] of Object.entries(VARIABLES) as [VariableName, Variable<unknown>][]) {
    const fallback = typeof variable.default === 'function' ? variable.default() : variable.default;
    const raw = env[name];
    const given = raw !== undefined && (raw.trim() !== '' || variable.emptyIsValue === true);
    const parsed = variable.parser.parse(given ? raw : fallback);
    if (parsed.ok) {
      values[name] = parsed.value;
      continue;
    }
    failed.add(name);
    const shown = parsed.shown ?? raw;
    for (const complaint of parsed.complaints) {
      // The value is echoed to say what was wrong, never with a secret in it.
      problems.push(`${name}=${JSON.stringify(shown === undefined ? shown : shownValue(variable, shown))}: ${complaint}`);
    }
    const standIn = variable.parser.parse(fallback);
    values[name] = standIn.ok ? standIn.value : null;
  }
  return values as Values;
}

/**
 * What no single parser can see: settings that only make sense together. A check runs only when
 * its variables parsed: a wrong value is already reported, and a complaint built on the default
 * standing in for it would mislead ("set both or neither" when both are set, one wrongly).
 */
function crossChecks(v: Values, failed: ReadonlySet<VariableName>, problems: string[]): void {
  const valid = (...names: VariableName[]): boolean => names.every((name) => !failed.has(name));
  if (valid('NIMBUS_TLS_CERT', 'NIMBUS_TLS_KEY') && (v.NIMBUS_TLS_CERT === null) !== (v.NIMBUS_TLS_KEY === null)) {
    problems.push('NIMBUS_TLS_CERT and NIMBUS_TLS_KEY: set both or neither');
  }
  const mode = v.NIMBUS_PARTICIPATION;
  if (valid('NIMBUS_PARTICIPATION', 'NIMBUS_ACCEPT_STATEMENT') && mode !== 'off' && !v.NIMBUS_ACCEPT_STATEMENT) {
    problems.push(
      `NIMBUS_PARTICIPATION=${mode} needs NIMBUS_ACCEPT_STATEMENT=yes: read what is sent with \`nimbus statement\`, then set NIMBUS_ACCEPT_STATEMENT=yes to accept it (or NIMBUS_PARTICIPATION=off)`,
    );
  }
  if (valid('NIMBUS_PARTICIPATION', 'NIMBUS_REPUTATION_URL') && mode !== 'off' && v.NIMBUS_REPUTATION_URL === null) {
    problems.push(`NIMBUS_PARTICIPATION=${mode} needs NIMBUS_REPUTATION_URL: the reputation service to exchange with`);
  }
  // Checked only when something asks the DNS: a short scan budget alone must not need a DNS setting.
  const askers = [
    ...(valid('NIMBUS_DNS_LISTS') && v.NIMBUS_DNS_LISTS.length > 0 ? ['NIMBUS_DNS_LISTS'] : []),
    ...(valid('NIMBUS_AUTH_CHECKS') && v.NIMBUS_AUTH_CHECKS ? ['NIMBUS_AUTH_CHECKS=on'] : []),
  ];
  if (askers.length > 0 && valid('NIMBUS_DNS_TIMEOUT_MS', 'NIMBUS_SCAN_TIMEOUT_MS') && v.NIMBUS_DNS_TIMEOUT_MS >= v.NIMBUS_SCAN_TIMEOUT_MS) {
    problems.push(`NIMBUS_DNS_TIMEOUT_MS=${v.NIMBUS_DNS_TIMEOUT_MS}: expected less than NIMBUS_SCAN_TIMEOUT_MS (${v.NIMBUS_SCAN_TIMEOUT_MS}) while ${askers.join(' and ')} asks the DNS: the DNS budget is spent inside the scan's`);
  }
  if (valid('NIMBUS_TAG_SCORE', 'NIMBUS_REJECT_SCORE') && v.NIMBUS_REJECT_SCORE < v.NIMBUS_TAG_SCORE) {
    problems.push(`NIMBUS_REJECT_SCORE=${v.NIMBUS_REJECT_SCORE}: expected a number >= NIMBUS_TAG_SCORE (${v.NIMBUS_TAG_SCORE})`);
  }
}

/** Where each variable goes in `Config` (the rest of Nimbus reads these field names). */
function toConfig(v: Values): Config {
  const cert = v.NIMBUS_TLS_CERT;
  const key = v.NIMBUS_TLS_KEY;
  const weights = Object.freeze({
    ip: v.NIMBUS_WEIGHT_IP,
    net: v.NIMBUS_WEIGHT_NET,
    attachment: v.NIMBUS_WEIGHT_ATTACHMENT,
    image: v.NIMBUS_WEIGHT_IMAGE,
    url: v.NIMBUS_WEIGHT_URL,
    body: v.NIMBUS_WEIGHT_BODY,
    domain: v.NIMBUS_WEIGHT_DOMAIN,
  });
  return {
    listen: v.NIMBUS_LISTEN,
    nextHop: v.NIMBUS_NEXT_HOP,
    relayDomains: v.NIMBUS_RELAY_DOMAINS,
    trustedNetworks: v.NIMBUS_TRUSTED_NETWORKS,
    trustedBlockList: blockListOf(v.NIMBUS_TRUSTED_NETWORKS),
    maxMessageSize: v.NIMBUS_MAX_MESSAGE_SIZE,
    maxRecipients: v.NIMBUS_MAX_RECIPIENTS,
    maxRefusedRecipients: v.NIMBUS_MAX_REFUSED_RECIPIENTS,
    maxConnections: v.NIMBUS_MAX_CONNECTIONS,
    socketTimeoutMs: v.NIMBUS_SOCKET_TIMEOUT_MS,
    spoolThreshold: v.NIMBUS_SPOOL_THRESHOLD,
    nextHopTimeoutMs: v.NIMBUS_NEXT_HOP_TIMEOUT_MS,
    tls: cert !== null && key !== null ? { cert, key } : null,
    hostname: v.NIMBUS_HOSTNAME,
    dataDir: v.NIMBUS_DATA_DIR,
    reputationUrl: v.NIMBUS_REPUTATION_URL,
    reputationKey: v.NIMBUS_REPUTATION_KEY,
    lookupTimeoutMs: v.NIMBUS_LOOKUP_TIMEOUT_MS,
    unknownCacheMs: v.NIMBUS_UNKNOWN_CACHE_MS,
    scanTimeoutMs: v.NIMBUS_SCAN_TIMEOUT_MS,
    dnsServers: v.NIMBUS_DNS_SERVERS,
    dnsTimeoutMs: v.NIMBUS_DNS_TIMEOUT_MS,
    authChecks: v.NIMBUS_AUTH_CHECKS,
    dmarcRejectWeight: v.NIMBUS_WEIGHT_DMARC_REJECT,
    bayesWeight: v.NIMBUS_WEIGHT_BAYES,
    dnsLists: Object.freeze(v.NIMBUS_DNS_LISTS.map((list) => Object.freeze({ ...list, weight: list.weight ?? weights[LIST_KIND_WEIGHT[list.kind]] }))),
    httpListen: v.NIMBUS_HTTP_LISTEN,
    store: v.NIMBUS_STORE,
    redisUrls: v.NIMBUS_REDIS_URL,
    upstreamUrl: v.NIMBUS_UPSTREAM_URL,
    upstreamKey: v.NIMBUS_UPSTREAM_KEY,
    metricsListen: v.NIMBUS_METRICS_LISTEN,
    logLevel: v.NIMBUS_LOG_LEVEL,
    participation: v.NIMBUS_PARTICIPATION,
    acceptStatement: v.NIMBUS_ACCEPT_STATEMENT,
    uploadBacklog: v.NIMBUS_UPLOAD_BACKLOG,
    outboxMaxRecords: v.NIMBUS_OUTBOX_MAX_RECORDS,
    outboxMaxAgeDays: v.NIMBUS_OUTBOX_MAX_AGE_DAYS,
    uploadBatchSize: v.NIMBUS_UPLOAD_BATCH_SIZE,
    statsRetentionDays: v.NIMBUS_STATS_RETENTION_DAYS,
    historyRetentionDays: v.NIMBUS_HISTORY_RETENTION_DAYS,
    historySubjects: v.NIMBUS_HISTORY_SUBJECTS,
    consoleListen: v.NIMBUS_CONSOLE_LISTEN,
    consoleAdminKey: v.NIMBUS_CONSOLE_ADMIN_KEY,
    sampleMaxBytes: v.NIMBUS_SAMPLE_MAX_BYTES,
    sampleOutboxMaxBytes: v.NIMBUS_SAMPLE_OUTBOX_MAX_BYTES,
    imageHashCache: v.NIMBUS_IMAGE_HASH_CACHE,
    tagScore: v.NIMBUS_TAG_SCORE,
    rejectScore: v.NIMBUS_REJECT_SCORE,
    spamAction: v.NIMBUS_SPAM_ACTION,
    subjectTag: v.NIMBUS_SUBJECT_TAG,
    weights,
    spamtraps: v.NIMBUS_SPAMTRAPS,
    workers: v.NIMBUS_WORKERS ?? availableParallelism(),
    milterWorkers: v.NIMBUS_WORKERS ?? Math.max(1, Math.floor(availableParallelism() / 2)),
    milterListen: v.NIMBUS_MILTER_LISTEN,
    milterQuarantine: v.NIMBUS_MILTER_QUARANTINE,
    milterOnError: v.NIMBUS_MILTER_ON_ERROR,
    envFile: v.NIMBUS_ENV_FILE,
  };
}

export interface Settings {
  readonly config: Config;
  /** The same, by variable name, for `nimbus config`. */
  readonly values: Values;
}

/** Parses and validates the environment; throws ConfigError naming every bad variable. */
export function loadSettings(processEnv: Env = process.env): Settings {
  const problems: string[] = [];
  const failed = new Set<VariableName>();
  const values = readValues(effectiveEnv(processEnv), problems, failed);
  crossChecks(values, failed, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: Object.freeze(toConfig(values)), values: Object.freeze(values) };
}

/** Parses and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(processEnv: Env = process.env): Config {
  return loadSettings(processEnv).config;
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
    const accepted = (YES as readonly string[]).includes(env.NIMBUS_ACCEPT_STATEMENT?.trim().toLowerCase() ?? '');
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
