/**
 * Opens the configured reputation store: SQLite (embedded) or Redis / Redis Cluster. Everything
 * above (service, gateway, CLI, proxy) goes through the returned engine and key store only.
 */
import { NimbusError } from '../errors.js';
import type { OpenedReputation, ReputationStoreOptions } from './engine-types.js';
import { SqliteStore } from './stores/sqlite.js';

export async function openReputation(options: ReputationStoreOptions): Promise<OpenedReputation> {
  if (options.store === 'sqlite') {
    let store: SqliteStore;
    try {
      store = new SqliteStore(options.path, { backgroundCheckpoints: options.backgroundCheckpoints ?? true, writeBehind: options.writeBehind ?? false });
    } catch (error) {
      if (error instanceof NimbusError) throw error;
      throw new NimbusError('STORE_OPEN_FAILED', `cannot open the reputation store at ${options.path}: ${(error as Error).message}`, { cause: error });
    }
    return { engine: store, keys: store.keys, close: () => store.close() };
  }
  // Loaded only for Redis: ioredis alone is ~28 MB of RSS, which every gateway worker (embedded
  // SQLite only) would otherwise carry.
  const { openRedisStore } = await import('./stores/redis.js');
  return openRedisStore(options.urls, options.prefix);
}
