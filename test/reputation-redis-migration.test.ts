/**
 * A Redis store written in the hash layout (before packed states: `P fp:{t}` hashes of counters
 * and `P pair:{t}` hashes of per-reporter evidence) opened by today's Redis store, which keeps a
 * fingerprint in one packed string and converts old stores once when it opens them. The old keys
 * are written here by hand, field by field as the old OBSERVE script and setVerdict wrote them
 * (numbers formatted by Redis's Lua, TTLs and PERSIST included), so the test needs no git
 * history; a fresh store fed the same history is the control every lookup is compared with. Runs
 * on the Redis at 127.0.0.1:6379 (its own key prefixes, deleted afterwards) and on a three-master
 * Redis Cluster it starts itself (the upgrade scans every master).
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { Redis, Cluster } from 'ioredis';
import type { LookupResult, ReportRecord } from '../src/reputation/api.js';
import type { ReputationEngine } from '../src/reputation/engine-types.js';
import { fuzzyItem, storeIndexKeys } from '../src/reputation/engine.js';
import { openReputation } from '../src/reputation/open.js';
import { BATCH_TTL_MS, FORGET_AFTER_MS } from '../src/reputation/scoring.js';
import { startRedisCluster, type RedisClusterHandle } from './helpers/redis-cluster.js';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const THREE = 'url:sha256:migration-three-reporters';
const ADMIN = 'url:sha256:migration-admin-verdict';
const ADMIN_ONLY = 'url:sha256:migration-admin-before-any-report';
const MANY = 'url:sha256:migration-many-reporters';
const IMAGE_VALUE = 0x0123_4567_89ab_cdefn;
const IMAGE = `image:dhash64:${IMAGE_VALUE.toString(16).padStart(16, '0')}`;
/** 3 bits from IMAGE: found only through the fuzzy index. */
const IMAGE_NEAR = `image:dhash64:${(IMAGE_VALUE ^ 0b1011n).toString(16).padStart(16, '0')}`;
const ITEMS = [THREE, ADMIN, ADMIN_ONLY, MANY, IMAGE, IMAGE_NEAR];
const OLD_SENSORS = Array.from({ length: 12 }, (_, i) => `s${String(i).padStart(2, '0')}`);

const reporter = (id: string) => ({ id, weight: 1 });
/** A record a sensor delivered: one sighting of the fingerprint, no spam evidence. */
const sighting = (id: string, item: string): ReportRecord => ({ id, time: new Date(T0).toISOString(), fingerprints: [item], verdict: 'unknown', score: 0, action: 'deliver' });
const batchOf = (sensor: string) => `old-batch-${sensor}`;

/**
 * What the old store held after this history, all at T0 (so no decay):
 * - THREE: spam feedback from k1 and k2, a sighting from sensor k3 (2 spam, 3 reporters: unknown);
 * - ADMIN: ham feedback from k1, then an admin verdict of spam;
 * - ADMIN_ONLY: an admin verdict of bulk on a fingerprint never reported (no first/last seen);
 * - MANY: a sighting from each of 12 sensors (bulk; more reporters than a state keeps inline);
 * - IMAGE: spam feedback from k1, k2 and k3 (spam), filed in its fuzzy index.
 */
async function oldHistory(engine: ReputationEngine): Promise<void> {
  await engine.feedback(reporter('k1'), 'spam', [THREE], T0);
  await engine.feedback(reporter('k2'), 'spam', [THREE], T0);
  await engine.ingest(batchOf('k3'), reporter('k3'), [sighting('r-k3', THREE)], T0);
  await engine.feedback(reporter('k1'), 'ham', [ADMIN], T0);
  await engine.setVerdict(ADMIN, 'spam', { by: 'admin-key', reason: 'campaign' }, T0);
  await engine.setVerdict(ADMIN_ONLY, 'bulk', { by: 'admin-key' }, T0);
  for (const s of OLD_SENSORS) await engine.ingest(batchOf(s), reporter(s), [sighting(`r-${s}`, MANY)], T0);
  for (const k of ['k1', 'k2', 'k3']) await engine.feedback(reporter(k), 'spam', [IMAGE], T0);
}

type Client = Redis | Cluster;

/** The old key of a fingerprint: the store's prefix, the kind of key and the hash tag of the item. */
const tag = (item: string) => createHash('sha1').update(item).digest('base64url').slice(0, 16);
const oldKey = (prefix: string, kind: 'fp' | 'pair', item: string) => `${prefix}${kind}:{${tag(item)}}`;

/** A number as the old script stored it: formatted by Redis's Lua (`%.14g`). */
async function luaNumber(r: Client, n: number): Promise<string> {
  return (await r.eval('return tostring(tonumber(ARGV[1]))', 0, String(n))) as string;
}

/** The same history as keys, as the hash layout's OBSERVE script and setVerdict wrote them. */
async function writeOldStore(r: Client, prefix: string): Promise<void> {
  const t0 = await luaNumber(r, T0);
  const fp = async (item: string, fields: Record<string, number | string>, admin?: { verdict: string; reason: string }) => {
    const key = oldKey(prefix, 'fp', item);
    const values = await Promise.all(Object.entries(fields).map(async ([k, v]) => [k, typeof v === 'number' ? await luaNumber(r, v) : v]));
    await r.hset(key, ...values.flat());
    // Observed items got a TTL with every report; an admin verdict made the hash PERSIST.
    if (admin === undefined) await r.pexpire(key, FORGET_AFTER_MS);
    else await r.hset(key, 'admin', admin.verdict, 'reason', admin.reason);
  };
  const pairs = async (item: string, values: Record<string, [number, number, number, number]>) => {
    const key = oldKey(prefix, 'pair', item);
    for (const [who, [sensor, spam, weak, ham]] of Object.entries(values)) await r.hset(key, who, `${sensor},${spam},${weak},${ham},${t0}`);
    await r.pexpire(key, FORGET_AFTER_MS);
  };
  // Fields in the order the old script wrote them: ts seen sr hr se sp wk hm rep fs ls (lg).
  const counters = (seen: number, sr: number, hr: number, se: number, sp: number, wk: number, hm: number, rep: number) => ({ ts: T0, seen, sr, hr, se, sp, wk, hm, rep, fs: T0, ls: T0 });
  await fp(THREE, counters(1, 2, 0, 1, 2, 0, 0, 3));
  await pairs(THREE, { k1: [0, 1, 0, 0], k2: [0, 1, 0, 0], k3: [1, 0, 0, 0] });
  await fp(ADMIN, counters(0, 0, 1, 0, 0, 0, 1, 1), { verdict: 'spam', reason: 'campaign' });
  await pairs(ADMIN, { k1: [0, 0, 0, 1] });
  // setVerdict on a never-seen item: HSETNX ts, then admin and reason ('' when none), PERSIST.
  await fp(ADMIN_ONLY, { ts: T0 }, { verdict: 'bulk', reason: '' });
  await fp(MANY, counters(12, 0, 0, 12, 0, 0, 0, 12));
  await pairs(MANY, Object.fromEntries(OLD_SENSORS.map((s) => [s, [1, 0, 0, 0]])));
  await fp(IMAGE, { ...counters(0, 3, 0, 0, 3, 0, 0, 3), lg: Date.now() });
  await pairs(IMAGE, { k1: [0, 1, 0, 0], k2: [0, 1, 0, 0], k3: [0, 1, 0, 0] });
  for (const k of storeIndexKeys(fuzzyItem(IMAGE)!)) {
    await r.sadd(`${prefix}fz:${k}`, IMAGE);
    await r.pexpire(`${prefix}fz:${k}`, FORGET_AFTER_MS);
  }
  for (const s of ['k3', ...OLD_SENSORS]) await r.set(`${prefix}batch:${batchOf(s)}`, String(T0), 'PX', BATCH_TTL_MS);
}

interface Backend {
  readonly name: string;
  urls(): Promise<string[]>;
  client(urls: string[]): Promise<Client>;
  cleanup(): Promise<void>;
}

let cluster: RedisClusterHandle | undefined;
const backends: Backend[] = [
  {
    name: 'redis',
    urls: async () => ['redis://127.0.0.1:6379'],
    client: async (urls) => new Redis(urls[0]!),
    cleanup: async () => undefined,
  },
  {
    name: 'redis-cluster',
    urls: async () => (cluster ??= await startRedisCluster()).urls,
    client: async (urls) => {
      const c = new Cluster(urls.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })));
      // Its masters are known (for SCAN) once it is ready.
      await new Promise<void>((resolve, reject) => c.once('ready', resolve).once('error', reject));
      return c;
    },
    cleanup: async () => cluster?.stop(),
  },
];

const usedPrefixes: { backend: Backend; prefix: string }[] = [];
test.after.always(async () => {
  for (const { backend, prefix } of usedPrefixes) {
    const r = await backend.client(await backend.urls());
    try {
      for (const key of await allKeys(r, prefix)) await r.del(key);
    } finally {
      r.disconnect();
    }
  }
  for (const b of backends) await b.cleanup();
});

async function allKeys(r: Client, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of r instanceof Cluster ? r.nodes('master') : [r]) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
  }
  return keys.sort();
}

/** Every key under the prefix with its type and value (TTLs only as present or not: they run down). */
async function snapshot(r: Client, prefix: string): Promise<unknown> {
  return Promise.all(
    (await allKeys(r, prefix)).map(async (key) => {
      const type = await r.type(key);
      const value = type === 'string' ? (await r.getBuffer(key))!.toString('hex') : type === 'hash' ? await r.hgetall(key) : type === 'set' ? (await r.smembers(key)).sort() : type;
      return { key, type, value, expires: (await r.pttl(key)) > 0 };
    }),
  );
}

interface Pair {
  readonly r: Client;
  readonly urls: string[];
  readonly oldPrefix: string;
  /** The store opened on keys written in the hash layout. */
  upgraded: ReputationEngine;
  /** A fresh store given the same history through the engine. */
  control: ReputationEngine;
  close(): Promise<void>;
}

const open = async (urls: string[], prefix: string) => (await openReputation({ store: 'redis', urls, prefix })).engine;

async function openPair(backend: Backend): Promise<Pair> {
  const urls = await backend.urls();
  const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const oldPrefix = `nimbus-test-upgrade-${id}:`;
  const controlPrefix = `nimbus-test-upgrade-control-${id}:`;
  usedPrefixes.push({ backend, prefix: oldPrefix }, { backend, prefix: controlPrefix });
  const r = await backend.client(urls);
  await writeOldStore(r, oldPrefix);
  const upgraded = await open(urls, oldPrefix);
  const control = await open(urls, controlPrefix);
  await oldHistory(control);
  const close = async () => {
    await Promise.all([upgraded.close(), control.close()]);
    r.disconnect();
  };
  return { r, urls, oldPrefix, upgraded, control, close };
}

/** Runs the same call on both stores. */
async function both(p: Pair, call: (e: ReputationEngine) => Promise<unknown>): Promise<void> {
  await call(p.upgraded);
  await call(p.control);
}

async function lookupBoth(p: Pair, items: readonly string[]): Promise<{ upgraded: LookupResult[]; control: LookupResult[] }> {
  return { upgraded: await p.upgraded.lookup(items, T0), control: await p.control.lookup(items, T0) };
}

const byItem = (results: LookupResult[]) => new Map(results.map((r) => [r.item, r]));
const iso = new Date(T0).toISOString();

for (const backend of backends) {
  test.serial(`[${backend.name}] a store written in the hash layout answers the same verdicts and counters after the upgrade`, async (t) => {
    const p = await openPair(backend);
    try {
      const { upgraded, control } = await lookupBoth(p, ITEMS);
      t.deepEqual(upgraded, control);
      const r = byItem(upgraded);
      t.like(r.get(THREE), { verdict: 'unknown', score: 2 / 3, counters: { seen: 1, spam: 2, ham: 0, reporters: 3, firstSeen: iso, lastSeen: iso, adminVerdict: null } });
      t.like(r.get(ADMIN), { verdict: 'spam', score: 1, confidence: 1, counters: { seen: 0, spam: 0, ham: 1, reporters: 1, adminVerdict: 'spam' } });
      t.like(r.get(ADMIN_ONLY), { verdict: 'bulk', counters: { seen: 0, reporters: 0, firstSeen: null, lastSeen: null, adminVerdict: 'bulk' } });
      t.like(r.get(MANY), { verdict: 'bulk', score: 0, counters: { seen: 12, spam: 0, ham: 0, reporters: 12, adminVerdict: null } });
      t.like(r.get(IMAGE), { verdict: 'spam', counters: { spam: 3, reporters: 3 } });
      t.like(r.get(IMAGE_NEAR), { verdict: 'spam', match: { item: IMAGE } });
      // A batch the old store accepted is still known: a sensor resending it is not counted twice.
      t.deepEqual(await p.upgraded.ingest(batchOf('k3'), reporter('k3'), [sighting('r-k3', THREE)], T0), { accepted: 0, duplicate: true });

      // No hash of the old layout is left; decay's TTL is kept, and admin verdicts still never expire.
      const keys = await allKeys(p.r, p.oldPrefix);
      t.deepEqual(keys.filter((k) => k.startsWith(`${p.oldPrefix}fp:`) || k.startsWith(`${p.oldPrefix}pair:`)), []);
      const state = (item: string) => `${p.oldPrefix}st:{${tag(item)}}`;
      for (const item of [THREE, MANY, IMAGE]) {
        const ttl = await p.r.pttl(state(item));
        t.true(ttl > 0 && ttl <= FORGET_AFTER_MS, `${item}: ${ttl}`);
      }
      t.is(await p.r.pttl(state(ADMIN)), -1);
      t.is(await p.r.pttl(state(ADMIN_ONLY)), -1);
      // MANY's reporters beyond those kept inline went to its spill hash, with the pair hash's TTL.
      t.true((await p.r.pttl(`${p.oldPrefix}sp:{${tag(MANY)}}`)) > 0);
      t.is(await p.r.get(`${p.oldPrefix}why:{${tag(ADMIN)}}`), 'campaign');
    } finally {
      await p.close();
    }
  });

  test.serial(`[${backend.name}] on an upgraded store a reporter stored in the old layout is not counted again, and a new reporter is`, async (t) => {
    const p = await openPair(backend);
    try {
      // k1 already gave THREE full spam evidence: counted again, it would make 3 voices and spam.
      await both(p, (e) => e.feedback(reporter('k1'), 'spam', [THREE], T0));
      let { upgraded, control } = await lookupBoth(p, [THREE]);
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'unknown', counters: { spam: 3, reporters: 3 } });
      // k3 is known too (a sighting): its first spam evidence adds a voice, not a reporter.
      await both(p, (e) => e.feedback(reporter('k3'), 'spam', [THREE], T0));
      ({ upgraded, control } = await lookupBoth(p, [THREE]));
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'spam', counters: { spam: 4, reporters: 3 } });
      // A new reporter counts, once, however often it reports.
      for (let i = 0; i < 3; i++) await both(p, (e) => e.feedback(reporter('k4'), 'spam', [THREE], T0));
      ({ upgraded, control } = await lookupBoth(p, [THREE]));
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'spam', counters: { spam: 7, reporters: 4 } });

      // MANY had 12 reporters in its pair hash (some now inline, the rest spilled); 5 new sensors.
      const fresh = Array.from({ length: 5 }, (_, i) => `n${i}`);
      for (const s of fresh) await both(p, (e) => e.ingest(`new-batch-${s}`, reporter(s), [sighting(`r-${s}`, MANY)], T0));
      ({ upgraded, control } = await lookupBoth(p, [MANY]));
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'bulk', counters: { seen: 17, reporters: 17 } });
      // Then every one of the 17, old and new, reports it again: still 17 reporters.
      for (const s of [...OLD_SENSORS, ...fresh]) await both(p, (e) => e.ingest(`again-batch-${s}`, reporter(s), [sighting(`r2-${s}`, MANY)], T0));
      ({ upgraded, control } = await lookupBoth(p, [MANY]));
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'bulk', counters: { seen: 34, reporters: 17 } });
    } finally {
      await p.close();
    }
  });

  test.serial(`[${backend.name}] an admin verdict from an old store keeps answering over new reports, can be cleared, and then expires again`, async (t) => {
    const p = await openPair(backend);
    try {
      await both(p, (e) => e.feedback(reporter('k1'), 'ham', [ADMIN], T0));
      await both(p, (e) => e.feedback(reporter('k2'), 'ham', [ADMIN], T0));
      let { upgraded, control } = await lookupBoth(p, [ADMIN]);
      t.deepEqual(upgraded, control);
      t.like(upgraded[0], { verdict: 'spam', counters: { ham: 3, reporters: 2, adminVerdict: 'spam' } });
      t.is(await p.r.pttl(`${p.oldPrefix}st:{${tag(ADMIN)}}`), -1, 'reports do not give an admin verdict a TTL');
      t.true(await p.upgraded.clearVerdict(ADMIN, { by: 'admin-key' }));
      t.true(await p.control.clearVerdict(ADMIN, { by: 'admin-key' }));
      t.false(await p.upgraded.clearVerdict(ADMIN, { by: 'admin-key' }));
      ({ upgraded, control } = await lookupBoth(p, [ADMIN]));
      t.deepEqual(upgraded, control);
      // Two voices of ham (k1 counted once): below the threshold of 3.
      t.like(upgraded[0], { verdict: 'unknown', counters: { ham: 3, reporters: 2, adminVerdict: null } });
      t.true((await p.r.pttl(`${p.oldPrefix}st:{${tag(ADMIN)}}`)) > 0);
      t.is(await p.r.exists(`${p.oldPrefix}why:{${tag(ADMIN)}}`), 0);
    } finally {
      await p.close();
    }
  });

  test.serial(`[${backend.name}] an old store is upgraded once: opening it again converts nothing, even keys in the old layout written since`, async (t) => {
    const p = await openPair(backend);
    try {
      await both(p, (e) => e.feedback(reporter('k5'), 'spam', [THREE], T0));
      t.is(await p.r.get(`${p.oldPrefix}schema`), '2');
      // Had the second open scanned again, it would convert this one.
      const late = 'url:sha256:migration-written-after-the-upgrade';
      await p.r.hset(oldKey(p.oldPrefix, 'fp', late), 'ts', await luaNumber(p.r, T0));
      const before = await snapshot(p.r, p.oldPrefix);

      const again = await open(p.urls, p.oldPrefix);
      try {
        t.deepEqual(await again.lookup(ITEMS, T0), await p.control.lookup(ITEMS, T0));
        t.deepEqual(await snapshot(p.r, p.oldPrefix), before);
        // And it still takes reports: k1 (old layout) again, k6 new.
        for (const e of [again, p.control]) {
          await e.feedback(reporter('k1'), 'spam', [THREE], T0);
          await e.feedback(reporter('k6'), 'spam', [THREE], T0);
        }
        const [after] = await again.lookup([THREE], T0);
        t.deepEqual(after, (await p.control.lookup([THREE], T0))[0]);
        t.like(after, { verdict: 'spam', counters: { reporters: 5 } });
      } finally {
        await again.close();
      }
    } finally {
      await p.close();
    }
  });

  test.serial(`[${backend.name}] instances opening an old store at the same time convert each fingerprint once`, async (t) => {
    const urls = await backend.urls();
    const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const prefix = `nimbus-test-upgrade-race-${id}:`;
    const controlPrefix = `nimbus-test-upgrade-race-control-${id}:`;
    usedPrefixes.push({ backend, prefix }, { backend, prefix: controlPrefix });
    const r = await backend.client(urls);
    try {
      await writeOldStore(r, prefix);
      const opened = await Promise.all([open(urls, prefix), open(urls, prefix), open(urls, prefix)]);
      const control = await open(urls, controlPrefix);
      try {
        await oldHistory(control);
        for (const e of opened) t.deepEqual(await e.lookup(ITEMS, T0), await control.lookup(ITEMS, T0));
        // Each reporter's evidence was converted once: s00, through every instance, is no new reporter.
        for (const e of opened) await e.feedback(reporter('s00'), 'spam', [MANY], T0);
        const [many] = await opened[0]!.lookup([MANY], T0);
        t.like(many, { counters: { reporters: 12, spam: 3 } });
      } finally {
        await Promise.all([...opened, control].map((e) => e.close()));
      }
    } finally {
      r.disconnect();
    }
  });
}
