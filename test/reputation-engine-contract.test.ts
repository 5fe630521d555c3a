/**
 * One behaviour suite run against every store: SQLite in a temp file, the real Redis at
 * 127.0.0.1:6379 (unique prefix, keys deleted after), and a three-master Redis Cluster started
 * by test/helpers/redis-cluster.ts.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ReportRecord } from '../src/reputation/api.js';
import type { OpenedReputation } from '../src/reputation/engine-types.js';
import { openReputation } from '../src/reputation/open.js';
import { DAY_MS } from '../src/reputation/scoring.js';
import { parseToken, secretMatches } from '../src/reputation/keys.js';
import { Redis } from 'ioredis';
import { startRedisCluster, type RedisClusterHandle } from './helpers/redis-cluster.js';

interface Backend {
  readonly name: string;
  /** False for a store that allows one writer per file (SQLite write-behind): `openSame` is not offered. */
  readonly sharedWriters: boolean;
  open(): Promise<OpenedReputation>;
  /** Another engine on the store `open` returned last (another process, another service instance). */
  openSame(): Promise<OpenedReputation>;
  cleanup(): Promise<void>;
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nimbus-engine-'));
let counter = 0;

const backends: Backend[] = [
  {
    name: 'sqlite',
    sharedWriters: true,
    open: () => openReputation({ store: 'sqlite', path: path.join(tmp, `r${++counter}.sqlite`) }),
    openSame: () => openReputation({ store: 'sqlite', path: path.join(tmp, `r${counter}.sqlite`) }),
    cleanup: async () => rmSync(tmp, { recursive: true, force: true }),
  },
  {
    // As the reputation service opens it: every behaviour must hold while rows are still pending.
    name: 'sqlite-write-behind',
    sharedWriters: false,
    open: () => openReputation({ store: 'sqlite', path: path.join(tmp, `r${++counter}.sqlite`), writeBehind: true }),
    openSame: () => Promise.reject(new Error('one writer per file')),
    cleanup: async () => undefined,
  },
];

const redisPrefix = `nimbus-test-${process.pid}-${randomBytes(4).toString('hex')}:`;
backends.push({
  name: 'redis',
  sharedWriters: true,
  open: () => openReputation({ store: 'redis', urls: ['redis://127.0.0.1:6379'], prefix: redisPrefix }),
  openSame: () => openReputation({ store: 'redis', urls: ['redis://127.0.0.1:6379'], prefix: redisPrefix }),
  cleanup: async () => {
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  },
});

let cluster: RedisClusterHandle | undefined;
backends.push({
  name: 'redis-cluster',
  sharedWriters: true,
  open: async () => {
    cluster ??= await startRedisCluster();
    return openReputation({ store: 'redis', urls: cluster.urls, prefix: 'nimbus-test:' });
  },
  openSame: () => openReputation({ store: 'redis', urls: cluster!.urls, prefix: 'nimbus-test:' }),
  cleanup: async () => cluster?.stop(),
});

test.after.always(async () => {
  for (const b of backends) await b.cleanup();
});

const T0 = Date.parse('2026-11-01T00:00:00Z');
const fp = (tag: string) => `url:sha256:${tag}${randomBytes(6).toString('hex')}`;
const record = (id: string, fingerprints: string[], extra: Partial<ReportRecord> = {}): ReportRecord => ({
  id,
  time: new Date(T0).toISOString(),
  fingerprints,
  verdict: 'unknown',
  score: 0,
  action: 'deliver',
  ...extra,
});
const reporter = (id: string) => ({ id, weight: 1 });

/** Flips `dct` distinct bits in the first half of a 64-hex-digit image:phash256 value and `gradient` in the second. */
function flipBits(value: string, dct: number, gradient: number): string {
  const digits = value.split('');
  for (const [count, from] of [[dct, 0], [gradient, 128]] as const) {
    const bits = new Set<number>();
    while (bits.size < count) bits.add(from + (randomBytes(1)[0]! % 128));
    for (const bit of bits) digits[bit >> 2] = (parseInt(digits[bit >> 2]!, 16) ^ (1 << (bit & 3))).toString(16);
  }
  return digits.join('');
}

for (const backend of backends) {
  const withStore = (title: string, body: (o: OpenedReputation) => Promise<void>) =>
    test.serial(`[${backend.name}] ${title}`, async (t) => {
      const opened = await backend.open();
      try {
        await body(opened);
        t.pass();
      } finally {
        await opened.close();
      }
    });
  const expect = (cond: boolean, what: string) => {
    if (!cond) throw new Error(what);
  };

  withStore('a never-seen fingerprint is unknown with zero score and counters', async ({ engine }) => {
    const item = fp('never');
    const [r] = await engine.lookup([item], T0);
    expect(r!.item === item && r!.verdict === 'unknown' && r!.score === 0 && r!.counters.seen === 0 && r!.match === null, JSON.stringify(r));
  });

  withStore('an admin verdict wins over counters and can be cleared', async ({ engine }) => {
    const item = fp('admin');
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`k${i}`), 'spam', [item], T0);
    expect((await engine.lookup([item], T0))[0]!.verdict === 'spam', 'five reporters make spam');
    await engine.setVerdict(item, 'ham', 'our newsletter', T0);
    const [r] = await engine.lookup([item], T0);
    expect(r!.verdict === 'ham' && r!.counters.adminVerdict === 'ham' && r!.confidence === 1, JSON.stringify(r));
    expect((await engine.clearVerdict(item)) === true, 'clear returns true');
    expect((await engine.clearVerdict(item)) === false, 'second clear returns false');
    expect((await engine.lookup([item], T0))[0]!.verdict === 'spam', 'counters answer again after clearing');
    const fresh = fp('adminfresh');
    await engine.setVerdict(fresh, 'spam', undefined, T0);
    expect((await engine.lookup([fresh], T0))[0]!.verdict === 'spam', 'verdict on a never-seen item');
  });

  withStore('1,000 reports from one reporter do not make spam; 5 distinct reporters do', async ({ engine }) => {
    const item = fp('poison');
    for (let i = 0; i < 1000; i += 100) await engine.feedback(reporter('loud'), 'spam', Array(100).fill(item), T0 + i);
    const loud = (await engine.ingest('batch-loud-0001', reporter('loud'), Array.from({ length: 1000 }, (_, i) => record(`r${i}`, [item], { action: 'trap', verdict: 'spam' })), T0))
    expect(loud.accepted === 1000, 'accepted');
    const [one] = await engine.lookup([item], T0);
    expect(one!.verdict !== 'spam' && one!.score < 0.6, `one reporter: ${JSON.stringify(one)}`);
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`distinct${i}`), 'spam', [item], T0);
    const [five] = await engine.lookup([item], T0);
    expect(five!.verdict === 'spam' && five!.score > 0.8 && five!.counters.reporters === 6, `five reporters: ${JSON.stringify(five)}`);
  });

  withStore('a trusted reporter flips a fingerprint alone, and ham feedback likewise', async ({ engine }) => {
    const item = fp('trusted');
    await engine.feedback({ id: 'local', weight: 1, trusted: true }, 'spam', [item], T0);
    expect((await engine.lookup([item], T0))[0]!.verdict === 'spam', 'trusted spam');
    // Decay must not undo the admin's report a moment later (it did when trust was exactly the threshold).
    expect((await engine.lookup([item], T0 + 7 * DAY_MS))[0]!.verdict === 'spam', 'trusted spam a week later');
    const good = fp('ham');
    for (let i = 0; i < 4; i++) await engine.feedback(reporter(`h${i}`), 'ham', [good], T0);
    expect((await engine.lookup([good], T0))[0]!.verdict === 'ham', 'ham from four reporters');
  });

  withStore('a fingerprint seen by many sensors with no spam evidence is bulk, not spam', async ({ engine }) => {
    const item = fp('bulk');
    for (let s = 0; s < 12; s++) await engine.ingest(`batch-bulk-${s}-x`, reporter(`sensor${s}`), [record('a', [item]), record('b', [item])], T0);
    const [r] = await engine.lookup([item], T0);
    expect(r!.verdict === 'bulk' && r!.counters.seen === 24 && r!.counters.reporters === 12, JSON.stringify(r));
  });

  withStore('old spam evidence decays to unknown', async ({ engine }) => {
    const item = fp('decay');
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`d${i}`), 'spam', [item], T0);
    expect((await engine.lookup([item], T0 + DAY_MS))[0]!.verdict === 'spam', 'spam tomorrow');
    const [later] = await engine.lookup([item], T0 + 120 * DAY_MS);
    expect(later!.verdict === 'unknown' && later!.counters.spam < 0.05, JSON.stringify(later));
  });

  withStore('a resent batch id counts once', async ({ engine }) => {
    const item = fp('idem');
    const batch = [record('1', [item]), record('2', [item])];
    const first = await engine.ingest('batch-idem-0001', reporter('s'), batch, T0);
    const again = await engine.ingest('batch-idem-0001', reporter('s'), batch, T0 + 1000);
    expect(first.accepted === 2 && !first.duplicate && again.accepted === 0 && again.duplicate, JSON.stringify([first, again]));
    expect((await engine.lookup([item], T0))[0]!.counters.seen === 2, 'seen twice only');
  });

  withStore('a fuzzy image neighbour within the threshold is found, one beyond it is not', async ({ engine }) => {
    const base = BigInt(`0x${randomBytes(8).toString('hex')}`);
    const hex = (v: bigint) => v.toString(16).padStart(16, '0');
    const stored = `image:dhash64:${hex(base)}`;
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`i${i}`), 'spam', [stored], T0);
    const near = `image:dhash64:${hex(base ^ 0b1000_0000_0100_0000_0010_0000_0001n ^ (1n << 63n))}`; // 5 bits
    const far = `image:dhash64:${hex(base ^ 0xff_ffn)}`; // 16 bits
    const [exact, n, f] = await engine.lookup([stored, near, far], T0);
    expect(exact!.verdict === 'spam', 'exact');
    expect(n!.item === near && n!.verdict === 'spam' && n!.match?.item === stored && Math.abs(n!.match.similarity - 59 / 64) < 1e-9, JSON.stringify(n));
    expect(f!.verdict === 'unknown' && f!.match === null, JSON.stringify(f));
  });

  withStore('copies that were only seen do not hide a reported image a few bits further, even when the copy itself is stored', async ({ engine }) => {
    const base = BigInt(`0x${randomBytes(8).toString('hex')}`);
    const hex = (v: bigint) => v.toString(16).padStart(16, '0');
    const reported = `image:dhash64:${hex(base)}`;
    const seenCopy = `image:dhash64:${hex(base ^ 0b11n)}`; // 2 bits from the original
    const newCopy = `image:dhash64:${hex(base ^ 0b111n)}`; // 1 bit from the seen copy, 3 from the original
    // A gateway recorded two copies as seen (unknown) before anyone reported the original.
    await engine.ingest(`batch-seen-${randomBytes(4).toString('hex')}`, reporter('sensor-b'), [record('s1', [seenCopy]), record('s2', [newCopy])], T0);
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`r${i}`), 'spam', [reported], T0);
    const [again, fresh] = await engine.lookup([newCopy, `image:dhash64:${hex(base ^ 0b1011n)}`], T0);
    expect(again!.verdict === 'spam' && again!.match?.item === reported, `stored copy: ${JSON.stringify(again)}`);
    expect(fresh!.verdict === 'spam' && fresh!.match?.item === reported, `new copy: ${JSON.stringify(fresh)}`);
  });

  withStore('an image hash 20 DCT and 32 gradient bits from a reported one is found; one more bit in either half is not', async ({ engine }) => {
    const value = randomBytes(32).toString('hex');
    const stored = `image:phash256:${value}`;
    for (let i = 0; i < 5; i++) await engine.feedback(reporter(`p${i}`), 'spam', [stored], T0);
    const edge = `image:phash256:${flipBits(value, 20, 32)}`;
    const dctBeyond = `image:phash256:${flipBits(value, 21, 32)}`;
    const gradientBeyond = `image:phash256:${flipBits(value, 20, 33)}`;
    const [n, d, g] = await engine.lookup([edge, dctBeyond, gradientBeyond], T0);
    expect(n!.verdict === 'spam' && n!.match?.item === stored && n!.match.similarity === 1 - (20 + 32) / 256, `at the threshold: ${JSON.stringify(n)}`);
    expect(d!.verdict === 'unknown' && d!.match === null, `21 DCT bits: ${JSON.stringify(d)}`);
    expect(g!.verdict === 'unknown' && g!.match === null, `33 gradient bits: ${JSON.stringify(g)}`);
  });

  if (backend.sharedWriters) withStore('an image reported through another engine on the same store is found as a neighbour by one already running', async ({ engine }) => {
    const value = randomBytes(32).toString('hex');
    const probe = `image:phash256:${flipBits(value, 5, 7)}`;
    expect((await engine.lookup([probe], T0))[0]!.match === null, 'nothing near yet'); // this engine has read its index
    const other = await backend.openSame();
    try {
      for (let i = 0; i < 5; i++) await other.engine.feedback(reporter(`o${i}`), 'spam', [`image:phash256:${value}`], T0);
    } finally {
      await other.close();
    }
    const [r] = await engine.lookup([probe], T0);
    expect(r!.verdict === 'spam' && r!.match?.item === `image:phash256:${value}`, JSON.stringify(r));
  });

  withStore('keys can be added, found, listed and revoked, and only a hash of the secret is stored', async ({ keys }) => {
    const { key, token } = await keys.addKey('sensor', 'edge-1', 7);
    const parsed = parseToken(token);
    expect(parsed !== null && parsed.id === key.id && key.role === 'sensor' && key.rateLimit === 7 && key.revokedAt === null, token);
    const found = await keys.findKey(key.id);
    expect(found !== null && secretMatches(parsed!.secret, found.secretHash) && !JSON.stringify(found).includes(parsed!.secret), 'hashed');
    expect(!secretMatches(`${parsed!.secret}x`, found!.secretHash), 'wrong secret');
    expect((await keys.listKeys()).some((k) => k.id === key.id), 'listed');
    expect((await keys.revokeKey(key.id)) === true && (await keys.findKey(key.id))!.revokedAt !== null, 'revoked');
    expect((await keys.revokeKey('0000000000000000')) === false && (await keys.findKey('0000000000000000')) === null, 'unknown id');
  });
}
