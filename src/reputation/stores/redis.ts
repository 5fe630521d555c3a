import { NimbusError } from '../../errors.js';
import type { OpenedReputation } from '../engine-types.js';

export async function openRedisStore(urls: readonly string[], _prefix?: string): Promise<OpenedReputation> {
  throw new NimbusError('STORE_UNAVAILABLE', `the Redis reputation store (${urls.join(', ')}) is not implemented yet`);
}
