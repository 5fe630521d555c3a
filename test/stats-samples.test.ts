/**
 * Which attachments become samples (src/stats/samples.ts) and how the gateway's sample outbox
 * keeps them (src/stats/sample-outbox.ts, a real SQLite file in a temp dir).
 */
import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { pino } from 'pino';
import { loadConfig } from '../src/config/index.js';
import { SampleKeeper, SampleOutbox } from '../src/stats/sample-outbox.js';
import { SAMPLE_RULES, selectSamples, type Sample, type SampleCandidate } from '../src/stats/samples.js';
import { statementText } from '../src/stats/statement.js';
import { tempDir } from './helpers/temp.js';

const hash = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
function candidate(name: string, type: string, content: Buffer): SampleCandidate {
  return { sha256: hash(content), type, size: content.length, name, content };
}
const exe = (size = 1000) => Buffer.concat([Buffer.from('MZ'), randomBytes(size - 2)]);
const unknown = () => undefined;
const sample = (content: Buffer): Sample => ({ sha256: hash(content), type: 'application/octet-stream', size: content.length, content });

test('an unknown executable is a sample in any message, even named and typed as text; a known one is not', (t) => {
  const disguised = candidate('readme.txt', 'text/plain', exe());
  const script = candidate('run.ps1', 'application/octet-stream', Buffer.from('Write-Host hi\n'.repeat(10)));
  const known = candidate('setup.exe', 'application/x-msdownload', exe());
  const verdicts = new Map([[`attachment:sha256:${known.sha256}`, 'ham' as const]]);
  const chosen = selectSamples([disguised, script, known], (text) => verdicts.get(text), 'ham', 1 << 20);
  t.deepEqual(chosen.map((s) => s.sha256), [disguised.sha256, script.sha256]);
  t.false('name' in chosen[0]!, 'the file name is not kept with the sample');
});

test('documents, archives and HTML are samples only in spam; plain text never; nothing over the cap or with a cap of 0', (t) => {
  const pdf = candidate('invoice.pdf', 'application/pdf', Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(500)]));
  const zip = candidate('files.bin', 'application/octet-stream', Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), randomBytes(500)]));
  const html = candidate('login.html', 'text/html', Buffer.from('<form action=x>'.repeat(20)));
  const text = candidate('notes.txt', 'text/plain', Buffer.from('just words\n'.repeat(20)));
  const all = [pdf, zip, html, text];
  t.deepEqual(selectSamples(all, unknown, 'ham', 1 << 20), []);
  t.deepEqual(selectSamples(all, unknown, 'unknown', 1 << 20), []);
  t.deepEqual(selectSamples(all, unknown, 'spam', 1 << 20).map((s) => s.sha256), [pdf.sha256, zip.sha256, html.sha256]);
  t.deepEqual(selectSamples([candidate('big.exe', 'application/x-msdownload', exe(2000))], unknown, 'spam', 1999), []);
  t.deepEqual(selectSamples([candidate('a.exe', 'application/x-msdownload', exe())], unknown, 'spam', 0), []);
});

test('at most 5 samples per message, each hash once', (t) => {
  const same = exe();
  const many = [candidate('a.exe', 'x', same), candidate('b.exe', 'x', same), ...Array.from({ length: 8 }, (_, i) => candidate(`${i}.exe`, 'x', exe()))];
  const chosen = selectSamples(many, unknown, 'ham', 1 << 20);
  t.is(chosen.length, 5);
  t.is(new Set(chosen.map((s) => s.sha256)).size, 5);
});

test('the outbox stays under its byte bound by dropping the oldest, counted; a sent sample is not kept again', (t) => {
  const outbox = new SampleOutbox(tempDir('nimbus-sample-outbox-'), { sampleOutboxMaxBytes: 2500, outboxMaxAgeDays: 30 });
  t.teardown(() => outbox.close());
  const [a, b, c] = [exe(), exe(), exe()];
  outbox.add([sample(a)], 1000);
  outbox.add([sample(b)], 2000);
  t.is(outbox.add([sample(c)], 3000), 1, 'the third 1,000-byte sample pushes the oldest out');
  t.like(outbox.summary(), { waiting: 2, waitingBytes: 2000, dropped: 1 });
  const next = outbox.next('me', 4000)!;
  t.is(next.sha256, hash(b));
  t.true(next.content.equals(b));
  outbox.acknowledge(next.sha256, 5000);
  outbox.add([sample(b)], 6000);
  t.like(outbox.summary(), { waiting: 1, uploaded: 1 }, 'b was sent: the same attachment again is not kept');
  t.is(outbox.next('other', 6000)!.sha256, hash(c));
  t.is(outbox.next('third', 6000), null, 'claimed by "other"');
});

test('samples are kept only while extended; leaving extended deletes those waiting; `nimbus stats` never deletes', (t) => {
  const dataDir = tempDir('nimbus-sample-keeper-');
  const base = { NIMBUS_DATA_DIR: dataDir, NIMBUS_ACCEPT_STATEMENT: 'yes', NIMBUS_REPUTATION_URL: 'http://127.0.0.1:9' };
  const extended = loadConfig({ ...base, NIMBUS_PARTICIPATION: 'extended' });
  const standard = loadConfig({ ...base, NIMBUS_PARTICIPATION: 'standard' });
  const log = pino({ level: 'silent' });
  const keeper = new SampleKeeper(extended, log, { readOnly: false });
  t.teardown(() => keeper.close());
  keeper.keep([sample(exe())], standard);
  t.is(keeper.summary().waiting, 0, 'nothing kept for a message processed in standard');
  keeper.keep([sample(exe())], extended);
  t.is(keeper.summary().waiting, 1);
  const reader = new SampleKeeper(standard, log, { readOnly: true });
  t.is(reader.summary().waiting, 1, 'a read-only view under another configuration deletes nothing');
  reader.close();
  keeper.reload(standard);
  t.like(keeper.summary(), { waiting: 0, dropped: 1 });
});

test('nimbus statement says under extended, and only there, when samples are taken and what of them is sent', (t) => {
  const text = statementText();
  const [before, extended] = text.split('== extended ==') as [string, string];
  for (const line of SAMPLE_RULES) t.true(extended.includes(line.trim()), line);
  t.false(before.includes('POST /v1/samples'), 'off and standard send no samples');
  t.regex(before.split('== standard ==')[1]!, /No attachment bytes/);
});
