/**
 * Converts a store written in the hash layout (before packed states: `P fp:{t}` and `P pair:{t}`
 * hashes, a field per counter) once: every instance opening a store without `P schema` scans for
 * `P fp:{t}` hashes (on every master of a Cluster) before it serves, so the hot path never looks
 * for old keys. Instances opening at once may both scan; UPGRADE converts a fingerprint only
 * while its hashes exist, so each is converted once.
 */
import { Cluster } from 'ioredis';
import type { Client } from './redis-connection.js';
import type { RedisKeyNames } from './redis-layout.js';
import type { Scripts } from './redis-scripts.js';

/** Version of the key layout, kept in `P schema`: 2 is packed states (none is the hash layout). */
export const SCHEMA_VERSION = 2;
/** Keys per SCAN page while upgrading, each converted by its own UPGRADE call (pipelined). */
const UPGRADE_SCAN_COUNT = 1000;

/** Redis glob metacharacters in a literal prefix, escaped for SCAN MATCH. */
const globLiteral = (s: string): string => s.replace(/[*?[\]\\]/g, '\\$&');

export async function upgradeLayout(r: Client, k: RedisKeyNames, scripts: Scripts): Promise<void> {
  if (Number(await r.get(k.schema)) >= SCHEMA_VERSION) return;
  const legacy = `${k.prefix}fp:{`;
  const nodes = r instanceof Cluster ? r.nodes('master') : [r];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${globLiteral(legacy)}*}`, 'COUNT', UPGRADE_SCAN_COUNT);
      cursor = next;
      await Promise.all(
        keys.map((key) => {
          const tag = key.slice(legacy.length, -1);
          return scripts.nimbusUpgrade(key, `${k.prefix}pair:{${tag}}`, k.state(tag), k.spill(tag), k.reason(tag));
        }),
      );
    } while (cursor !== '0');
  }
  await r.set(k.schema, String(SCHEMA_VERSION));
}
