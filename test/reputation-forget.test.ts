/**
 * Undo: an engine forgets what one reporter's reports added, in both stores (SQLite in a temp
 * file, the real Redis at 127.0.0.1:6379 under a unique prefix), for a reporter kept inline in
 * the fingerprint's row and for one beyond them (spilled).
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { OpenedReputation, Reporter } from '../src/reputation/engine-types.js';
import { ForgetUnsupported } from '../src/reputation/engine.js';
import { openReputation } from '../src/reputation/open.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nimbus-forget-'));
const prefix = `nimbus-forget-${process.pid}-${randomBytes(4).toString('hex')}:`;
let counter = 0;

const stores: { name: string; open: () => Promise<OpenedReputation> }[] = [
  { name: 'sqlite', open: () => openReputation({ store: 'sqlite', path: path.join(tmp, `r${++counter}.sqlite`) }) },
  { name: 'redis', open: () => openReputation({ store: 'redis', urls: ['redis://127.0.0.1:6379'], prefix: `${prefix}${++counter}:` }) },
];

test.after.always(async () => {
  rmSync(tmp, { recursive: true, force: true });
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
});

const admin: Reporter = { id: 'local-admin', weight: 1, trusted: true };
const voice = (id: string): Reporter => ({ id, weight: 1 });
const NOW = Date.parse('2026-12-07T10:00:00Z');
// Content fingerprints: a trusted report convicts content at once (link domains need a second message).
const ONLY_ADMIN = 'attachment:sha256:' + 'aa'.repeat(32);
const SHARED = 'attachment:sha256:' + 'bb'.repeat(32);
const ADMIN_HAM = 'attachment:sha256:' + 'cc'.repeat(32);
const NEVER = 'attachment:sha256:' + 'dd'.repeat(32);

for (const store of stores) {
  test(`${store.name}: forgetting the admin's spam report leaves the fingerprint as if never reported, and other reporters' evidence stays`, async (t) => {
    const opened = await store.open();
    t.teardown(() => opened.close());
    const { engine } = opened;
    await engine.feedback(admin, 'spam', [ONLY_ADMIN, SHARED], NOW);
    await engine.feedback(voice('k2'), 'spam', [SHARED], NOW);
    await engine.feedback(admin, 'ham', [ADMIN_HAM], NOW);
    t.is((await engine.lookup([ONLY_ADMIN], NOW))[0]!.verdict, 'spam');

    t.is(await engine.forget('local-admin', 'spam', [ONLY_ADMIN, SHARED, ADMIN_HAM, NEVER], NOW + 1000), 2);
    const [only, shared, ham] = await engine.lookup([ONLY_ADMIN, SHARED, ADMIN_HAM], NOW + 1000);
    t.is(only!.verdict, 'unknown');
    t.is(only!.score, 0);
    t.is(only!.counters.spam, 0);
    t.is(ham!.verdict, 'ham', 'the admin\'s ham evidence is another channel: it stays');
    const explained = await engine.explain(SHARED, NOW + 1000);
    const evidence = Object.fromEntries(explained!.reporters.map((r) => [r.id, r.spam]));
    t.is(evidence['local-admin'], 0);
    t.true(evidence.k2! > 0.99);
    t.true(shared!.score > 0 && shared!.score < 0.6, `one ordinary voice left: ${shared!.score}`);
    t.is(await engine.forget('local-admin', 'spam', [ONLY_ADMIN], NOW + 2000), 0, 'nothing left to forget');
  });

  test(`${store.name}: a reporter beyond the ones kept inline (spilled) is forgotten too`, async (t) => {
    const opened = await store.open();
    t.teardown(() => opened.close());
    const { engine } = opened;
    const item = 'attachment:sha256:' + 'ab'.repeat(32);
    for (let i = 0; i < 6; i++) await engine.feedback(voice(`k${i}`), 'ham', [item], NOW);
    await engine.feedback(admin, 'spam', [item], NOW);
    const before = (await engine.lookup([item], NOW))[0]!;
    t.is(before.verdict, 'unknown', 'the trusted admin\'s spam report holds back six ham voices');
    t.true(before.score > 0);
    t.is(await engine.forget('local-admin', 'spam', [item], NOW), 1);
    const after = (await engine.lookup([item], NOW))[0]!;
    t.is(after.score, 0);
    t.is(after.verdict, 'ham');
  });
}

test('a SQLite store writing behind a journal (the reputation service) refuses to forget, saying why', async (t) => {
  const opened = await openReputation({ store: 'sqlite', path: path.join(tmp, 'write-behind.sqlite'), writeBehind: true });
  t.teardown(() => opened.close());
  await t.throwsAsync(opened.engine.forget('local-admin', 'spam', ['url:domain:x.example']), { instanceOf: ForgetUnsupported, message: /journal/ });
});
