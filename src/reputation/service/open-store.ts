/**
 * Opens the store the configuration names, the same way for the service and `nimbus keys`
 * (so a key added by the CLI is the key the service checks): SQLite at
 * `dataDir/reputation.sqlite`, or Redis / Redis Cluster at NIMBUS_REDIS_URL.
 */
import path from 'node:path';
import type { Config } from '../../config/index.js';
import { makePrivateDir } from '../../private-files.js';
import type { OpenedReputation, ReputationStoreOptions } from '../engine-types.js';
import { openReputation } from '../open.js';

/**
 * `service`: the one process that writes fingerprints, so SQLite writes them behind a journal
 * (stores/sqlite-write-behind.ts); `keys`: the CLI beside it, which writes only API keys.
 */
export type StoreUser = 'service' | 'keys';

export function storeOptions(config: Config, user: StoreUser): ReputationStoreOptions {
  if (config.store === 'redis') return { store: 'redis', urls: config.redisUrls };
  return { store: 'sqlite', path: path.join(config.dataDir, 'reputation.sqlite'), writeBehind: user === 'service' };
}

export async function openConfiguredReputation(config: Config, user: StoreUser): Promise<OpenedReputation> {
  if (config.store === 'sqlite') makePrivateDir(config.dataDir);
  return openReputation(storeOptions(config, user));
}
