/**
 * Connections to Redis or Redis Cluster, shared by the store, the service's sample store and the
 * CLI: the reconnect and retry policy, readiness, and the credentials and TLS of the URLs.
 */
import { Redis, Cluster } from 'ioredis';
import { NimbusError } from '../../errors.js';
import { maskCredentials } from '../../redact.js';

export type Client = Redis | Cluster;

/**
 * Reconnect and retry policy of every Redis client (store, samples, CLI), so that a Redis outage
 * costs a request a few milliseconds and a clear error instead of a wait:
 * - while not connected, a command fails at once (`enableOfflineQueue: false`): nothing queues
 *   for a Redis that may be gone for minutes, and the service answers 503 (service/health.ts);
 * - commands in flight when the connection drops fail at once (`maxRetriesPerRequest: 0`) and
 *   are never sent again after a reconnect (`autoResendUnfulfilledCommands: false`): a script
 *   whose reply was lost may have run, and running it twice would count a report twice; the
 *   caller resends (a report batch is idempotent by its id);
 * - the client reconnects forever, RECONNECT_FIRST_MS doubling to RECONNECT_MAX_MS between
 *   attempts (a Cluster: ioredis's clusterRetryStrategy, also at most 2 s), so the service
 *   serves again within about RECONNECT_MAX_MS of Redis coming back, without a restart.
 */
export const RECONNECT_FIRST_MS = 50;
export const RECONNECT_MAX_MS = 2000;
/** How long a readiness PING may take before the store counts as unreachable. */
export const PING_TIMEOUT_MS = 1000;

export function reconnectDelay(attempt: number): number {
  return Math.min(RECONNECT_FIRST_MS * 2 ** Math.max(0, attempt - 1), RECONNECT_MAX_MS);
}

const FAIL_FAST = { maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false } as const;

/** host:port of each URL: for messages and logs, never the password a URL may carry. */
export function redisHosts(urls: readonly string[]): string {
  return urls
    .map((u) => {
      try {
        return new URL(u).host;
      } catch {
        return '(bad URL)';
      }
    })
    .join(', ');
}

/**
 * The user, password and TLS a Cluster's node connections use. ioredis takes the seed nodes as
 * host and port only; what a URL says about authentication applies to every node it discovers,
 * so the seeds must agree on it (a Cluster has one ACL and one TLS setting for all its nodes).
 */
export function clusterAuth(urls: readonly string[]): { username?: string; password?: string; tls?: object } {
  const parsed = urls.map((u) => new URL(u));
  const describe = (url: URL): string => `${url.protocol}${url.username}:${url.password === '' ? '' : '***'}`;
  const first = parsed[0]!;
  for (const url of parsed) {
    if (url.protocol !== first.protocol || url.username !== first.username || url.password !== first.password) {
      throw new NimbusError('STORE_OPEN_FAILED', `the Redis Cluster URLs disagree on scheme, user or password (${describe(first)} vs ${describe(url)}): every node uses the same`);
    }
  }
  return {
    ...(first.username !== '' ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password !== '' ? { password: decodeURIComponent(first.password) } : {}),
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * A connected client: Redis (one URL) or Redis Cluster (several seed URLs), with the policy
 * above; fails clearly when unreachable. Also used by the service's sample store (service/samples.ts).
 */
export async function connectRedis(urls: readonly string[]): Promise<Client> {
  if (urls.length === 0) throw new NimbusError('STORE_OPEN_FAILED', 'no Redis URL given for the reputation store');
  let client: Client;
  if (urls.length === 1) {
    client = new Redis(urls[0]!, { enableAutoPipelining: true, lazyConnect: true, enableOfflineQueue: false, retryStrategy: reconnectDelay, ...FAIL_FAST });
  } else {
    const nodes = urls.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    client = new Cluster(nodes, { enableAutoPipelining: true, lazyConnect: true, enableOfflineQueue: false, redisOptions: { ...FAIL_FAST, ...clusterAuth(urls) } });
  }
  // Later errors surface through the failing command. While connecting, ioredis rejects with
  // "Connection is closed." and says why (WRONGPASS, ECONNREFUSED…) only in an error event.
  let why: Error | null = null;
  const remember = (error: Error): void => {
    why ??= error;
  };
  client.on('error', remember);
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    // A Cluster's "Failed to refresh slots cache." says why only in the last node's error.
    const failed = why ?? (error as Error);
    const reason = (failed as { lastNodeError?: Error }).lastNodeError ?? failed;
    throw new NimbusError('STORE_OPEN_FAILED', `cannot connect to Redis at ${redisHosts(urls)}: ${maskCredentials(reason.message)}`, { cause: reason });
  }
  client.off('error', remember);
  client.on('error', () => undefined);
  return client;
}

/**
 * Follows a client's connection: the returned function tells why it cannot serve now (not
 * connected, or reconnecting, with the last connection error, e.g. WRONGPASS after a password
 * change), or null when it is ready. No host and no secret in it: `/readyz` answers it to anyone.
 */
export function watchRedis(client: Client): () => string | null {
  let lastError: string | null = null;
  client.on('error', (error: Error) => (lastError = maskCredentials(error.message)));
  client.on('ready', () => (lastError = null));
  // The error, not the status, names the outage: the status cycles through every reconnect attempt.
  return () => (client.status === 'ready' ? null : lastError ? `Redis is not connected: ${lastError}` : `Redis is not connected (${client.status})`);
}

/** One PING, rejected when it fails or takes over PING_TIMEOUT_MS (a Redis that hangs rather than refuses). */
export async function pingRedis(client: Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer PING within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
  });
  try {
    await Promise.race([client.ping().catch((error: Error) => Promise.reject(new Error(`Redis PING failed: ${error.message}`))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
