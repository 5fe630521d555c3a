/**
 * What a crash of Redis would lose, read at the service's start: with Redis's default snapshots
 * (no AOF) a kill -9 lost every report batch acknowledged since the last snapshot, and every API
 * key added meanwhile. The service reads each node's `appendonly`, `appendfsync` and `save`
 * (CONFIG GET; a managed Redis may refuse CONFIG, which leaves them unknown) and logs one line
 * per node:
 * - `redis_persistence_unsafe` (warn) naming the setting when acknowledged writes can be lost:
 *   `appendonly no` (everything since the last snapshot), or `appendfsync no` (what the OS has
 *   not yet written, ~30 s on Linux, on a power cut or OS crash);
 * - `redis_persistence` (info) for AOF with `everysec` (up to ~1 s on a power cut) or `always`
 *   (nothing), and when the settings cannot be read.
 * It never stops the service: how to run Redis is the operator's call (docs/admin/operations.md, "Redis for Nimbus").
 */
import type { Logger } from 'pino';
import { Cluster, type Redis } from 'ioredis';
import { connectRedis, redisHosts, type Client } from '../stores/redis-connection.js';

export interface PersistenceSettings {
  /** null when CONFIG GET was refused or failed. */
  readonly appendonly: string | null;
  readonly appendfsync: string | null;
  readonly save: string | null;
  /** Why the settings are unknown. */
  readonly unreadable?: string;
}

export interface PersistenceRisk {
  /** The setting that lets acknowledged data be lost, or null when none does (or unknown). */
  readonly setting: 'appendonly' | 'appendfsync' | null;
  readonly text: string;
}

type ConfigReader = Pick<Client, 'config'>;

export async function readPersistence(node: ConfigReader): Promise<PersistenceSettings> {
  const get = async (name: string): Promise<string | null> => {
    // One parameter per call: CONFIG GET takes several only from Redis 7 on.
    const reply = (await node.config('GET', name)) as unknown as string[];
    return reply[1] ?? null;
  };
  try {
    return { appendonly: await get('appendonly'), appendfsync: await get('appendfsync'), save: await get('save') };
  } catch (error) {
    return { appendonly: null, appendfsync: null, save: null, unreadable: (error as Error).message };
  }
}

export function persistenceRisk(settings: PersistenceSettings): PersistenceRisk {
  if (settings.appendonly === null) {
    return { setting: null, text: `persistence unknown (CONFIG GET refused: ${settings.unreadable ?? 'no answer'}); run it with appendonly yes and appendfsync everysec or always` };
  }
  if (settings.appendonly !== 'yes') {
    const since = settings.save ? ` since the last snapshot (save "${settings.save}")` : ' it holds (no snapshots either: save "")';
    return {
      setting: 'appendonly',
      text: `appendonly ${settings.appendonly}: a crash or kill -9 of Redis loses every acknowledged write${since}: report batches, verdicts and API keys; set appendonly yes and appendfsync everysec (or always)`,
    };
  }
  if (settings.appendfsync === 'no') {
    return {
      setting: 'appendfsync',
      text: 'appendfsync no: the OS decides when the AOF reaches the disk (about every 30 s on Linux), so a power cut or OS crash loses up to that much of the acknowledged writes: report batches, verdicts and API keys; set appendfsync everysec (or always)',
    };
  }
  const lost = settings.appendfsync === 'always' ? 'no acknowledged write is lost' : 'a power cut or OS crash loses up to ~1 s of acknowledged writes';
  return { setting: null, text: `AOF with appendfsync ${settings.appendfsync}: ${lost}` };
}

/** Reads every node's settings (each master of a Cluster) and logs what a crash would lose. */
export async function logRedisPersistence(urls: readonly string[], log: Logger): Promise<void> {
  let client: Client;
  try {
    client = await connectRedis(urls);
  } catch (error) {
    log.info({ event: 'reputation.redis_persistence', redis: redisHosts(urls), appendonly: null }, `Redis persistence not checked: ${(error as Error).message}`);
    return;
  }
  try {
    const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
    for (const node of nodes) {
      const settings = await readPersistence(node);
      const risk = persistenceRisk(settings);
      const fields = { redis: `${node.options.host ?? ''}:${node.options.port ?? ''}`, appendonly: settings.appendonly, appendfsync: settings.appendfsync, save: settings.save };
      if (risk.setting !== null) log.warn({ event: 'reputation.redis_persistence_unsafe', setting: risk.setting, ...fields }, `Redis can lose acknowledged data: ${risk.text}`);
      else log.info({ event: 'reputation.redis_persistence', ...fields }, `Redis persistence: ${risk.text}`);
    }
  } finally {
    client.disconnect();
  }
}
