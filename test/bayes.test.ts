/**
 * The local statistical classifier (src/bayes) end to end in-process: mail generated per test
 * learnt with `nimbus learn`'s own code into a temp data dir's engine file, then scanned by the
 * scan core with that file's classifier, as a gateway would.
 */
import test from 'ava';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BAYES_SPAM_TEST, BayesClassifier, MIN_LEARNT, combine } from '../src/bayes/classify.js';
import { BayesStore } from '../src/bayes/store.js';
import { messageTokens } from '../src/bayes/tokens.js';
import { createLogger } from '../src/log.js';
import type { FeedbackLabel } from '../src/reputation/engine-types.js';
import { AdminReports } from '../src/scan/admin-reports.js';
import { learnPaths } from '../src/scan/learn.js';
import { ReportedMessages } from '../src/scan/reported-messages.js';
import { localReputationPath, openLocalReputation } from '../src/scan/runtime.js';
import { Scanner } from '../src/scan/scanner.js';
import type { ScanRequest } from '../src/scan/types.js';

const SPAM_WORDS = 'viagra pharmacy discount wholesale cheapest replica watches casino bonus winner lottery unclaimed refinance mortgage pills guaranteed'.split(' ');
const HAM_WORDS = 'meeting agenda minutes kernel patch review build release notes quarterly budget lunch tomorrow thanks regards project deadline'.split(' ');
const COMMON_WORDS = 'the and you for this that with have from your will about there which their'.split(' ');
/** A word no message learnt here holds in the clear anywhere but its text. */
const MARKER = 'quixoticmarker';

function text(words: readonly string[], seed: number, length = 60): string {
  let state = seed;
  const out: string[] = [];
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const pool = i % 3 === 0 ? COMMON_WORDS : words;
    out.push(pool[(state >>> 8) % pool.length]!);
  }
  return out.join(' ');
}

function mail(label: FeedbackLabel, seed: number): Buffer {
  const words = label === 'spam' ? SPAM_WORDS : HAM_WORDS;
  return Buffer.from(
    [
      `Received: from host${seed}.example.net (host${seed}.example.net [198.51.100.${seed % 250}]) by mx.example.org with ESMTP id ${seed}; Mon, 7 Dec 2026 10:00:00 +0000`,
      `From: ${label}${seed}@example.net`,
      'To: rcpt@example.org',
      `Subject: ${text(words, seed + 7, 4)}`,
      `Message-ID: <${label}-${seed}@example.net>`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      `${text(words, seed)} ${MARKER}`,
      '',
    ].join('\r\n'),
    'latin1',
  );
}

interface Learnt {
  readonly dataDir: string;
  learn(label: FeedbackLabel, count: number, offset?: number): Promise<void>;
  scan(bytes: Buffer): ReturnType<Scanner['scan']>;
  totals(): { spam: number; ham: number };
}

async function learnt(t: { teardown(fn: () => Promise<void> | void): void }): Promise<Learnt> {
  const dir = await mkdtemp(join(tmpdir(), 'nimbus-bayes-'));
  const dataDir = join(dir, 'data');
  const local = await openLocalReputation({ dataDir });
  const record = new ReportedMessages(localReputationPath({ dataDir }));
  const store = new BayesStore(localReputationPath({ dataDir }));
  const reports = new AdminReports(local.engine, record, {}, store);
  // A second connection, as a gateway has its own.
  const readStore = new BayesStore(localReputationPath({ dataDir }));
  const policy = { tagScore: 5, rejectScore: 15, spamAction: 'tag', subjectTag: '', weights: { ip: 0, net: 0, attachment: 0, image: 0, url: 0, body: 0, domain: 0 }, spamtraps: [], scanTimeoutMs: 20_000, bayesWeight: 5 } as const;
  const scanner = new Scanner({ policy, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, bayes: new BayesClassifier(readStore), log: createLogger('silent') });
  t.teardown(async () => {
    readStore.close();
    store.close();
    record.close();
    await local.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dataDir,
    async learn(label, count, offset = 0) {
      const folder = join(dir, `${label}-${offset}-${count}`);
      await mkdir(folder, { recursive: true });
      for (let i = 0; i < count; i++) await writeFile(join(folder, `${i}.eml`), mail(label, offset + i));
      await learnPaths(label, [folder], reports);
    },
    scan(bytes) {
      const request: ScanRequest = {
        id: 'bayes-test',
        message: { size: bytes.length, read: async () => bytes, stream: () => Readable.from([bytes]) },
        envelope: { mailFrom: 'a@example.net', rcptTo: ['bob@example.org'] },
        client: { ip: '203.0.113.9', helo: 'host.example.net', name: null, trusted: false },
      };
      return scanner.scan(request);
    },
    totals: () => readStore.totals(),
  };
}

test('after the minimum of spam and ham is learnt, a new spam-like message gets NIMBUS_BAYES_SPAM and a ham-like one does not', async (t) => {
  const history = await learnt(t);
  await history.learn('spam', MIN_LEARNT);
  await history.learn('ham', MIN_LEARNT);
  t.deepEqual(history.totals(), { spam: MIN_LEARNT, ham: MIN_LEARNT });
  const spam = await history.scan(mail('spam', 10_001));
  t.true(spam.tests.includes(BAYES_SPAM_TEST), spam.tests.join(','));
  t.is(spam.verdict, 'spam');
  t.is(spam.score, 5);
  const ham = await history.scan(mail('ham', 10_002));
  t.false(ham.tests.includes(BAYES_SPAM_TEST), ham.tests.join(','));
  t.is(ham.verdict, 'unknown');
});

test('below the minimum of either label the classifier adds no test', async (t) => {
  const history = await learnt(t);
  await history.learn('spam', MIN_LEARNT);
  await history.learn('ham', MIN_LEARNT - 1);
  const spam = await history.scan(mail('spam', 10_001));
  t.deepEqual(spam.tests, []);
  t.is(spam.score, 0);
});

test('learning the same messages again does not count them twice; relabelling one moves its tokens', async (t) => {
  const history = await learnt(t);
  await history.learn('spam', 20);
  await history.learn('spam', 20);
  t.deepEqual(history.totals(), { spam: 20, ham: 0 });
  const store = new BayesStore(localReputationPath({ dataDir: history.dataDir }));
  t.teardown(() => store.close());
  const tokens = messageTokens(`${text(SPAM_WORDS, 3)} ${MARKER}`, text(SPAM_WORDS, 10, 4));
  const marker = messageTokens(MARKER, '')[0]!;
  t.true(tokens.includes(marker));
  t.deepEqual(store.counts([marker]).get(marker), { spam: 20, ham: 0 });
  // Message 3 of the first folder, learnt as ham now: out of spam, into ham.
  const folder = join(history.dataDir, '..', 'relabel');
  await mkdir(folder);
  await writeFile(join(folder, 'one.eml'), mail('spam', 3));
  const local = await openLocalReputation({ dataDir: history.dataDir });
  const record = new ReportedMessages(localReputationPath({ dataDir: history.dataDir }));
  try {
    const summary = await learnPaths('ham', [folder], new AdminReports(local.engine, record, {}, store));
    t.is(summary.relabelled, 1);
  } finally {
    record.close();
    await local.close();
  }
  t.deepEqual(store.totals(), { spam: 19, ham: 1 });
  t.deepEqual(store.counts([marker]).get(marker), { spam: 19, ham: 1 });
});

test('no word is stored in the clear: the engine file holds only hashes of the tokens', async (t) => {
  const history = await learnt(t);
  await history.learn('spam', 5);
  await history.learn('ham', 5);
  const files = (await readdir(history.dataDir)).filter((name) => name.startsWith('local-reputation.sqlite'));
  t.true(files.length > 0);
  for (const name of files) {
    const bytes = await readFile(join(history.dataDir, name));
    for (const word of [MARKER, 'viagra', 'agenda']) t.false(bytes.includes(word), `${word} in ${name}`);
  }
});

test('Fisher combining: no evidence is 1/2, spammy tokens near 1, hammy ones near 0', (t) => {
  t.is(combine([]), 0.5);
  t.true(combine(Array.from({ length: 20 }, () => 0.99)) > 0.99);
  t.true(combine(Array.from({ length: 20 }, () => 0.01)) < 0.01);
  t.true(Math.abs(combine([0.99, 0.01]) - 0.5) < 1e-9);
});
