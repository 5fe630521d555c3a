import test from 'ava';
import { openReputation } from '../src/reputation/open.js';
import { startRedisCluster } from './helpers/redis-cluster.js';

// Content fingerprints: one trusted report convicts them (a link domain would need a second message).
const item = `attachment:sha256:${'c1'.repeat(32)}`;

test('a password-protected Redis Cluster is opened with the password its URLs carry: reports and lookups work on every node', async (t) => {
  const cluster = await startRedisCluster({ password: 'cluster-secret' });
  t.teardown(() => cluster.stop());
  const opened = await openReputation({ store: 'redis', urls: cluster.urls, prefix: `nimbus-auth-${process.pid}:` });
  t.teardown(() => opened.close());
  // Fingerprints land in different slots, so on different masters: each connection must authenticate.
  const items = Array.from({ length: 20 }, (_, i) => `attachment:sha256:${i.toString(16).padStart(2, '0').repeat(32)}`);
  await opened.engine.feedback({ id: 'admin-key', weight: 1, trusted: true }, 'spam', [item, ...items]);
  const results = await opened.engine.lookup([item, ...items]);
  t.deepEqual(new Set(results.map((result) => result.verdict)), new Set(['spam']));
});

test('a Redis Cluster URL without its password is refused at open with Redis\'s reason, not a hang', async (t) => {
  const cluster = await startRedisCluster({ password: 'cluster-secret' });
  t.teardown(() => cluster.stop());
  const bare = cluster.urls.map((url) => url.replace('default:cluster-secret@', ''));
  const error = await t.throwsAsync(openReputation({ store: 'redis', urls: bare, prefix: `nimbus-auth-${process.pid}:` }));
  t.regex(error!.message, /NOAUTH|Authentication required|WRONGPASS/i);
  t.notRegex(error!.message, /cluster-secret/);
});
