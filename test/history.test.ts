/**
 * The local message history: what the relay writes per message, what the console's queries read
 * back, that subjects are kept only when asked, and that old entries go.
 */
import { statSync } from 'node:fs';
import test from 'ava';
import { GTUBE } from '../src/scan/gtube.js';
import { subjectOf } from '../src/scan/subject.js';
import { HistoryStore, historyPath, type HistoryEntry } from '../src/stats/history-store.js';
import { startGatewayProcess } from './helpers/nimbus.js';
import { startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

function entry(overrides: Partial<HistoryEntry> = {}): HistoryEntry {
  return {
    time: Date.now(),
    queueId: 'Q1',
    clientIp: '192.0.2.1',
    helo: 'mx.example.org',
    mailFrom: 'alice@example.org',
    rcptCount: 1,
    size: 1000,
    verdict: 'ham',
    score: 0,
    action: 'deliver',
    tests: [],
    fingerprints: [{ text: 'ip:sha256:aa', label: '192.0.2.1', verdict: 'unknown', reputation: 0, weight: 3, contribution: 0, complete: true }],
    subject: null,
    ...overrides,
  };
}

test('the history lists newest first, filters by verdict, action, client, sender and time, and counts per hour', (t) => {
  const dir = testDir(t);
  const store = new HistoryStore(dir);
  t.teardown(() => store.close());
  const now = Date.now();
  const spammy = { text: 'url:domain:spam.example', label: 'spam.example', verdict: 'spam' as const, reputation: 0.9, weight: 6, contribution: 5.4, complete: true };
  store.insertMany([
    entry({ time: now - 2 * HOUR_MS, queueId: 'OLD' }),
    entry({ time: now - HOUR_MS, queueId: 'SPAM', verdict: 'spam', score: 9, action: 'tag', clientIp: '203.0.113.9', mailFrom: 'Bulk@Spam.example', fingerprints: [spammy] }),
    entry({ time: now, queueId: 'NEW', fingerprints: [{ ...spammy, text: `body:minhash64:${'ab'.repeat(128)}`, contribution: 0 }] }),
  ]);
  t.deepEqual(store.list().map((row) => row.queueId), ['NEW', 'SPAM', 'OLD']);
  const first = store.list({ limit: 1 });
  t.deepEqual([...first, ...store.list({ before: first[0]!.id })].map((row) => row.queueId), ['NEW', 'SPAM', 'OLD'], 'the next page starts after the last row shown');
  t.deepEqual(store.list({ verdict: 'spam' }).map((row) => row.queueId), ['SPAM']);
  t.deepEqual(store.list({ action: 'deliver' }).map((row) => row.queueId), ['NEW', 'OLD']);
  t.deepEqual(store.list({ client: '203.0.113.9' }).map((row) => row.queueId), ['SPAM']);
  t.deepEqual(store.list({ sender: 'spam.EXAMPLE' }).map((row) => row.queueId), ['SPAM']);
  t.deepEqual(store.list({ sender: 'bulk@spam.example' }).map((row) => row.queueId), ['SPAM']);
  t.deepEqual(store.list({ sender: '@example.org' }).map((row) => row.queueId), ['NEW', 'OLD']);
  t.deepEqual(store.list({ since: now - 90 * 60_000 }).map((row) => row.queueId), ['NEW', 'SPAM']);
  const spam = store.list({ verdict: 'spam' })[0]!;
  t.deepEqual(store.get(spam.id)?.fingerprints, [spammy]);
  const counts = store.hourly(now - DAY_MS);
  t.is(counts.reduce((sum, row) => sum + row.count, 0), 3);
  t.is(counts.find((row) => row.verdict === 'spam')?.count, 1);
  t.deepEqual(store.topContributors(now - DAY_MS, 5), [{ text: 'url:domain:spam.example', label: 'spam.example', messages: 1, points: 5.4 }]);
  t.deepEqual(store.withFingerprint('url:domain:spam.example').map((row) => row.queueId), ['SPAM']);
  t.deepEqual(store.withFingerprint(`body:minhash64:${'ab'.repeat(128)}`).map((row) => row.queueId), ['NEW']);
  t.is(statSync(historyPath(dir)).mode & 0o777, 0o600);
});

test('entries older than the retention are pruned with their hourly counts', (t) => {
  const dir = testDir(t);
  const store = new HistoryStore(dir);
  t.teardown(() => store.close());
  const now = Date.now();
  store.insertMany([entry({ time: now - 40 * DAY_MS, queueId: 'GONE' }), entry({ time: now, queueId: 'KEPT' })]);
  t.is(store.prune(30, now), 1);
  t.deepEqual(store.list().map((row) => row.queueId), ['KEPT']);
  t.is(store.hourly(now - 60 * DAY_MS).length, 1);
});

test('a subject is decoded from its encoded words and unfolded', (t) => {
  const block = Buffer.from('From: a@example.org\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n =?ISO-8859-1?Q?_aus_K=F6ln?= <b>\r\nTo: b@example.org\r\n\r\n');
  t.is(subjectOf(block), 'Grüße aus Köln <b>');
  t.is(subjectOf(Buffer.from('From: a@example.org\r\n\r\n')), null);
});

test('the relay writes each message to the history, with its subject only under NIMBUS_HISTORY_SUBJECTS=yes', async (t) => {
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const [withSubjects, without] = await Promise.all([
    startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`, NIMBUS_HISTORY_SUBJECTS: 'yes' }),
    startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` }),
  ]);
  for (const gateway of [withSubjects, without]) {
    const sent = await swaks(gateway.port, ['--to', 'bob@example.com', '--from', 'alice@example.org', '--helo', 'sender.example', '--header', 'Subject: History-Marker', '--body', GTUBE]);
    t.is(sent.exitCode, 0, sent.output);
  }
  const read = async (dataDir: string) => {
    const store = new HistoryStore(dataDir);
    try {
      return await waitFor('the history entry', () => store.list()[0]);
    } finally {
      store.close();
    }
  };
  const kept = await read(withSubjects.dataDir);
  t.like(kept, { clientIp: '127.0.0.1', helo: 'sender.example', mailFrom: 'alice@example.org', rcptCount: 1, verdict: 'spam', action: 'tag', subject: 'History-Marker' });
  t.true(kept.tests.length > 0);
  t.true(kept.fingerprints.some((fingerprint) => fingerprint.text.startsWith('ip:')));
  t.true(kept.queueId.length > 0);
  t.like(await read(without.dataDir), { verdict: 'spam', subject: null });
});
