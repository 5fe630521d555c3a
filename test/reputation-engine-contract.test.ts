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
import { AUDIT_KEPT } from '../src/reputation/engine.js';
import { DAY_MS, HALF_LIFE_MS } from '../src/reputation/scoring.js';
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
// A content fingerprint: a trusted report convicts content at once, shared infrastructure (url,
// ip, net) only with a second reported message (its own test below).
const fp = (tag: string) => `attachment:sha256:${tag}${randomBytes(6).toString('hex')}`;
const linkDomain = (tag: string) => `url:domain:${tag}${randomBytes(6).toString('hex')}.example`;
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
const keyOf = (id: string, role: 'sensor' | 'reporter' | 'admin') => ({ id, weight: 1, role, trusted: role === 'admin' });
const iso = (ms: number) => new Date(ms).toISOString();

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
    await engine.setVerdict(item, 'ham', { by: 'admin-key', reason: 'our newsletter' }, T0);
    const [r] = await engine.lookup([item], T0);
    expect(r!.verdict === 'ham' && r!.counters.adminVerdict === 'ham' && r!.confidence === 1, JSON.stringify(r));
    expect((await engine.clearVerdict(item, { by: 'admin-key' })) === true, 'clear returns true');
    expect((await engine.clearVerdict(item, { by: 'admin-key' })) === false, 'second clear returns false');
    expect((await engine.lookup([item], T0))[0]!.verdict === 'spam', 'counters answer again after clearing');
    const fresh = fp('adminfresh');
    await engine.setVerdict(fresh, 'spam', { by: 'admin-key' }, T0);
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

  withStore('one trusted report convicts a message\'s content but not its link domain; a second reported message does', async ({ engine }) => {
    const admin = { id: 'local-admin', weight: 1, trusted: true };
    const domain = linkDomain('esp');
    const first = fp('newsletter1');
    await engine.feedback(admin, 'spam', [first, domain], T0);
    await engine.feedback(admin, 'spam', [first, domain], T0 + 1000);
    const [content, once] = await engine.lookup([first, domain], T0 + 1000);
    expect(content!.verdict === 'spam', `content convicted at once: ${JSON.stringify(content)}`);
    expect(once!.verdict === 'unknown', `one message reported twice leaves the domain unknown: ${JSON.stringify(once)}`);
    await engine.feedback(admin, 'spam', [fp('newsletter2'), domain], T0 + 2000);
    const [twice] = await engine.lookup([domain], T0 + 2000);
    expect(twice!.verdict === 'spam', `two distinct messages convict the domain: ${JSON.stringify(twice)}`);
    expect((await engine.lookup([domain], T0 + 9 * DAY_MS))[0]!.verdict === 'spam', 'still convicted nine days later');
  });

  withStore('ham seen from a link domain holds back the reports that name it', async ({ engine }) => {
    const admin = { id: 'local-admin', weight: 1, trusted: true };
    const domain = linkDomain('held');
    await engine.feedback(admin, 'ham', [fp('wanted'), domain], T0);
    for (let i = 0; i < 2; i++) await engine.feedback(admin, 'spam', [fp(`unwanted${i}`), domain], T0);
    const [held] = await engine.lookup([domain], T0);
    expect(held!.verdict !== 'spam', `two reports against one ham: ${JSON.stringify(held)}`);
  });

  withStore('an admin key\'s trap records convict a link domain from the second trapped message', async ({ engine }) => {
    const admin = keyOf('gw-admin', 'admin');
    const domain = linkDomain('trap');
    const body = fp('trapped');
    await engine.ingest('batch-trap-one', admin, [record('t1', [body, domain], { action: 'trap' })], T0);
    const [content, once] = await engine.lookup([body, domain], T0);
    expect(content!.verdict === 'spam' && once!.verdict === 'unknown', `one trapped message: ${JSON.stringify([content, once])}`);
    await engine.ingest('batch-trap-two', admin, [record('t2', [fp('trapped2'), domain], { action: 'trap' })], T0);
    expect((await engine.lookup([domain], T0))[0]!.verdict === 'spam', 'two trapped messages convict the domain');
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

  withStore('records without a batch id (the gateway\'s own traffic, never resent) count each time they are given', async ({ engine }) => {
    const item = fp('nobatch');
    const first = await engine.ingest(null, reporter('local'), [record('1', [item])], T0);
    const second = await engine.ingest(null, reporter('local'), [record('1', [item])], T0 + 1000);
    expect(first.accepted === 1 && !first.duplicate && second.accepted === 1 && !second.duplicate, JSON.stringify([first, second]));
    expect((await engine.lookup([item], T0 + 1000))[0]!.counters.seen === 2, 'seen twice');
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

  withStore('three reporters convict while the oldest report is at most one half-life old; one millisecond older, or two reporters however fresh, do not', async ({ engine }) => {
    const item = fp('three');
    for (let i = 0; i < 3; i++) await engine.feedback(reporter(`v${i}`), 'spam', [item], T0 + i * DAY_MS);
    // Two days after the first report the three sum to just under 3: voices, not the sum, decide.
    const [fresh] = await engine.lookup([item], T0 + 2 * DAY_MS + 3_600_000);
    expect(fresh!.verdict === 'spam', `three recent voices: ${JSON.stringify(fresh)}`);
    const [edge] = await engine.lookup([item], T0 + HALF_LIFE_MS);
    expect(edge!.verdict === 'spam', `oldest exactly one half-life old: ${JSON.stringify(edge)}`);
    const [beyond] = await engine.lookup([item], T0 + HALF_LIFE_MS + 1);
    expect(beyond!.verdict === 'unknown', `oldest one half-life and 1 ms old: ${JSON.stringify(beyond)}`);

    const two = fp('two');
    for (let i = 0; i < 2; i++) await engine.feedback(reporter(`w${i}`), 'spam', [two], T0);
    for (let i = 0; i < 50; i++) await engine.feedback(reporter('w1'), 'spam', [two], T0 + i);
    const [both] = await engine.lookup([two], T0 + 49);
    expect(both!.verdict === 'unknown', `two fresh voices: ${JSON.stringify(both)}`);
  });

  withStore('three reporters convict and three ham reporters acquit when their voices are kept beyond the inline ones', async ({ engine }) => {
    const spam = fp('spilled');
    const ham = fp('spilledham');
    // Four sensors' sightings fill the reporters a store keeps inline, so the voices spill over.
    for (let s = 0; s < 4; s++) await engine.ingest(`batch-fill-${s}-${spam}`, reporter(`fill${s}`), [record('f', [spam, ham])], T0);
    for (let i = 0; i < 3; i++) {
      await engine.feedback(reporter(`sv${i}`), 'spam', [spam], T0 + i * DAY_MS);
      await engine.feedback(reporter(`hv${i}`), 'ham', [ham], T0 + i * DAY_MS);
    }
    const [s1, h1] = await engine.lookup([spam, ham], T0 + HALF_LIFE_MS);
    expect(s1!.verdict === 'spam' && h1!.verdict === 'ham', `one half-life: ${JSON.stringify([s1, h1])}`);
    const [s2, h2] = await engine.lookup([spam, ham], T0 + HALF_LIFE_MS + 1);
    expect(s2!.verdict === 'unknown' && h2!.verdict === 'unknown', `just over: ${JSON.stringify([s2, h2])}`);
  });

  withStore('spam traps in sensor keys\' records never convict, three or ten of them; in three reporter keys\' records or one admin key\'s they do', async ({ engine }) => {
    const trap = (id: string, item: string) => [record(`${id}-trap`, [item], { action: 'trap', verdict: 'spam' })];
    const three = fp('sensors3');
    const ten = fp('sensors10');
    for (let s = 0; s < 10; s++) {
      if (s < 3) await engine.ingest(`batch-trap3-${s}`, keyOf(`sensor${s}`, 'sensor'), trap(`s${s}`, three), T0);
      await engine.ingest(`batch-trap10-${s}`, keyOf(`sensor${s}`, 'sensor'), trap(`s${s}`, ten), T0);
    }
    const [by3, by10] = await engine.lookup([three, ten], T0);
    expect(by3!.verdict === 'unknown' && by10!.verdict === 'unknown', `sensors: ${JSON.stringify([by3, by10])}`);
    const reported = fp('reporters3');
    for (let r = 0; r < 3; r++) await engine.ingest(`batch-trapr-${r}`, keyOf(`rep${r}`, 'reporter'), trap(`r${r}`, reported), T0);
    const byAdmin = fp('admin1');
    await engine.ingest('batch-trapa-0', keyOf('adm0', 'admin'), trap('a0', byAdmin), T0);
    const [rep, adm] = await engine.lookup([reported, byAdmin], T0);
    expect(rep!.verdict === 'spam' && adm!.verdict === 'spam', `reporters / admin: ${JSON.stringify([rep, adm])}`);
  });

  withStore('sensors\' trap hits add weak evidence to two reporters\' voices but never count as the third voice', async ({ engine }) => {
    const item = fp('support');
    for (let r = 0; r < 2; r++) await engine.feedback(reporter(`voice${r}`), 'spam', [item], T0);
    for (let s = 0; s < 3; s++) await engine.ingest(`batch-support-${s}`, keyOf(`sensor${s}`, 'sensor'), [record('t', [item], { action: 'trap' })], T0);
    // 2 voices + 1.5 weak (the cap) = 3.5: the sum convicts, as the network's weak evidence always could.
    expect((await engine.lookup([item], T0))[0]!.verdict === 'spam', 'fresh');
    // Half a half-life later the sum is 2.47 and only two reporters are voices.
    const [later] = await engine.lookup([item], T0 + HALF_LIFE_MS / 2);
    expect(later!.verdict === 'unknown', JSON.stringify(later));
  });

  withStore('a batch id is idempotent per key: another key\'s batch with the same id counts, the same key\'s resend does not', async ({ engine }) => {
    const item = fp('batchkey');
    const batch = [record('1', [item])];
    const a = await engine.ingest('batch-shared-0001', reporter('key-a'), batch, T0);
    const b = await engine.ingest('batch-shared-0001', reporter('key-b'), batch, T0);
    const again = await engine.ingest('batch-shared-0001', reporter('key-a'), batch, T0);
    expect(!a.duplicate && a.accepted === 1 && !b.duplicate && b.accepted === 1 && again.duplicate && again.accepted === 0, JSON.stringify([a, b, again]));
    const [r] = await engine.lookup([item], T0);
    expect(r!.counters.seen === 2 && r!.counters.reporters === 2, JSON.stringify(r));
  });

  withStore('overrides leave an audit trail of who, when, before, after and why; explain shows it with the reporters and their times', async ({ engine }) => {
    const item = fp('audit');
    await engine.feedback(reporter('voice-1'), 'spam', [item], T0);
    await engine.ingest(`batch-audit-${item}`, reporter('sensor-1'), [record('s', [item])], T0 + 1000);
    await engine.setVerdict(item, 'spam', { by: 'key-a', reason: 'campaign' }, T0 + 2000);
    await engine.setVerdict(item, 'ham', { by: 'key-b' }, T0 + 3000);
    expect(await engine.clearVerdict(item, { by: 'key-a', reason: 'mistake' }, T0 + 4000), 'cleared');
    expect(!(await engine.clearVerdict(item, { by: 'key-c' }, T0 + 5000)), 'nothing to clear, nothing recorded');
    const x = await engine.explain(item, T0 + 6000);
    expect(x !== null, 'explained');
    const expected = [
      { at: iso(T0 + 2000), by: 'key-a', before: null, after: 'spam', reason: 'campaign' },
      { at: iso(T0 + 3000), by: 'key-b', before: 'spam', after: 'ham', reason: null },
      { at: iso(T0 + 4000), by: 'key-a', before: 'ham', after: null, reason: 'mistake' },
    ];
    expect(JSON.stringify(x!.audit) === JSON.stringify(expected), JSON.stringify(x!.audit));
    expect(x!.override === null && x!.result.verdict === 'unknown' && x!.result.counters.reporters === 2, JSON.stringify(x));
    expect(x!.reporterCount === 2 && x!.reporters.map((r) => r.id).join() === 'sensor-1,voice-1', JSON.stringify(x!.reporters));
    const [sensor, voice] = x!.reporters;
    expect(sensor!.lastReport === iso(T0 + 1000) && sensor!.sensor === 1 && sensor!.spam === 0, JSON.stringify(sensor));
    expect(voice!.lastReport === iso(T0) && voice!.spam === 1 && voice!.sensor === 0, JSON.stringify(voice));

    const overridden = fp('auditnew');
    await engine.setVerdict(overridden, 'bulk', { by: 'local', reason: 'our newsletter' }, T0);
    const y = await engine.explain(overridden, T0);
    expect(y!.override?.verdict === 'bulk' && y!.override.reason === 'our newsletter' && y!.reporters.length === 0 && y!.audit.length === 1, JSON.stringify(y));
    expect((await engine.explain(fp('never'), T0)) === null, 'never heard of');
  });

  withStore(`an audit trail keeps a fingerprint's latest ${AUDIT_KEPT} changes`, async ({ engine }) => {
    const item = fp('auditcap');
    for (let i = 0; i < AUDIT_KEPT + 2; i++) await engine.setVerdict(item, i % 2 === 0 ? 'spam' : 'ham', { by: `key-${i}` }, T0 + i);
    const x = await engine.explain(item, T0 + AUDIT_KEPT + 2);
    expect(x!.audit.length === AUDIT_KEPT && x!.audit[0]!.by === 'key-2' && x!.audit.at(-1)!.by === `key-${AUDIT_KEPT + 1}`, JSON.stringify(x!.audit.slice(0, 2)));
  });

  withStore('explain lists a fuzzy fingerprint\'s near neighbours and the answer one of them gives', async ({ engine }) => {
    const base = BigInt(`0x${randomBytes(8).toString('hex')}`);
    const hex = (v: bigint) => v.toString(16).padStart(16, '0');
    const reported = `image:dhash64:${hex(base)}`;
    const copy = `image:dhash64:${hex(base ^ 0b101n)}`;
    await engine.ingest(`batch-copy-${randomBytes(4).toString('hex')}`, reporter('sensor-c'), [record('c', [copy])], T0);
    for (let i = 0; i < 3; i++) await engine.feedback(reporter(`n${i}`), 'spam', [reported], T0);
    const x = await engine.explain(copy, T0);
    expect(x!.result.verdict === 'spam' && x!.result.match?.item === reported, JSON.stringify(x!.result));
    expect(x!.neighbours.length === 1 && x!.neighbours[0]!.item === reported && x!.neighbours[0]!.similarity === 62 / 64 && x!.neighbours[0]!.verdict === 'spam', JSON.stringify(x!.neighbours));
    expect(x!.reporters.length === 1 && x!.reporters[0]!.id === 'sensor-c', JSON.stringify(x!.reporters));
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
