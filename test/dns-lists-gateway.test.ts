/**
 * The public DNS lists end to end, with real processes only: a DNS server on loopback serving an
 * IP list and a list that never answers, `nimbus gateway` relaying to smtp-sink, swaks as the
 * sending MTA (its real client address handed over with XCLIENT), then the gateway's own
 * statistics file read back; and `nimbus check` on the same message.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { ipFingerprints } from '../src/fingerprint/ip.js';
import { message } from '../fixtures/fingerprint/factory.js';
import { startDnsServer, type TestDnsServer } from './helpers/dns-server.js';
import { runNimbus } from './helpers/nimbus.js';
import { startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, gateway, header, relayedMessage } from './helpers/verdict.js';
import { waitForFiles } from './helpers/wait.js';

const LISTED_IP = '203.0.113.7';
const LISTS = 'zen:zen.test:ip:127.0.0.2=sbl+127.0.0.4-127.0.0.7=xbl:6,slow:slow.test:ip4:2';

async function listServer(t: Parameters<typeof startDnsServer>[0]): Promise<TestDnsServer> {
  return startDnsServer(t, [
    { name: 'zen.test', records: { '7.113.0.203.zen.test': { A: ['127.0.0.2', '127.0.0.4'] } } },
    { name: 'slow.test', records: { '7.113.0.203.slow.test': { silent: true } } },
  ]);
}

function listEnv(dns: TestDnsServer): Record<string, string> {
  return { NIMBUS_DNS_SERVERS: dns.address, NIMBUS_DNS_LISTS: LISTS, NIMBUS_DNS_TIMEOUT_MS: '500' };
}

const newsletter = (received?: string[]) =>
  message({
    ...(received ? { received } : {}),
    subject: 'Our spring offers',
    parts: [{ type: 'text/plain; charset=utf-8', content: 'Dear customer, our spring offers are here for you this week only.', encoding: '7bit' }],
  });

test('through a real gateway: a client listed by a DNS list is tagged with NIMBUS_DNSBL_ZEN, a silent list costs only the DNS budget, and the statistics record holds no list answer: it uploads the verdict and score without the points of the list', async (t) => {
  const dns = await listServer(t);
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const gw = await gateway(t, { ...listEnv(dns), NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` });
  const file = dataFile(testDir(t, 'nimbus-dnsbl-e2e-'), 'offer.eml', newsletter());
  const started = Date.now();
  const sent = await swaks(gw.port, ['--xclient', `ADDR=${LISTED_IP} HELO=mail.offers.example`, '--from', 'news@offers.example', '--to', 'bob@example.com', '--data', `@${file}`]);
  t.is(sent.exitCode, 0, sent.output);
  t.true(Date.now() - started < 8000, `the silent list held the message ${Date.now() - started} ms`);
  const [dump] = await waitForFiles(sink.dir, 1);
  const relayed = relayedMessage(readFileSync(dump!));
  t.deepEqual(header(relayed, 'X-Spam-Flag'), ['YES']);
  t.regex(header(relayed, 'X-Spam-Status')[0] ?? '', /^Yes, score=6\.0 required=5\.0 tests=NIMBUS_DNSBL_ZEN,NIMBUS_DNS_TEMPERROR$/);
  t.regex(header(relayed, 'X-Nimbus-Report')[0] ?? '', /^dnsbl:zen=listed\(sbl\+xbl\) dnsbl:slow=temperror\((budget|timeout)\)/);
  t.is(dns.asked('7.113.0.203.zen.test', 'A'), 1);

  // The record is durable before the sender's 250: read the gateway's own statistics file.
  const db = new Database(join(gw.dataDir, 'nimbus.sqlite'), { readonly: true, fileMustExist: true });
  t.teardown(() => db.close());
  const stats = db.prepare('SELECT verdict, score, fingerprints FROM stats').all() as { verdict: string; score: number; fingerprints: string }[];
  const outbox = db.prepare('SELECT record FROM outbox').all() as { record: string }[];
  t.is(stats.length, 1);
  t.is(outbox.length, 1);
  const stored = `${stats[0]!.fingerprints}\n${outbox[0]!.record}`;
  t.true(stored.includes(ipFingerprints(LISTED_IP)[0]!.text), "the record holds the message's own fingerprints (positive control)");
  for (const leak of ['dnsbl', 'DNSBL', 'zen.test', 'slow.test', '127.0.0.2', '127.0.0.4', 'sbl', 'xbl', 'temperror']) t.false(stored.includes(leak), `the record holds ${leak}`);
  const fingerprints = (JSON.parse(stats[0]!.fingerprints) as { text: string }[]).map((fingerprint) => fingerprint.text.split(':')[0]);
  t.deepEqual([...new Set(fingerprints)].sort(), ['body', 'ip', 'net'], 'fingerprints of the message, nothing a list answered');
  t.deepEqual([stats[0]!.verdict, stats[0]!.score], ['spam', 6], 'the local statistics keep what the gateway decided');
  const uploaded = JSON.parse(outbox[0]!.record) as { verdict: string; score: number };
  t.deepEqual([uploaded.verdict, uploaded.score], ['unknown', 0], 'the record to upload carries the verdict and score without the listing');
});

test('nimbus check asks the same lists about the address in the Received field, and prints what they answered', async (t) => {
  const dns = await listServer(t);
  const dir = testDir(t, 'nimbus-dnsbl-check-');
  const file = join(dir, 'offer.eml');
  const received = [`from mail.offers.example (mail.offers.example [${LISTED_IP}]) by mx.example.com with ESMTP id 7; Mon, 23 Nov 2026 07:00:00 +0000`];
  writeFileSync(file, newsletter(received));
  const result = await runNimbus(['check', '--json', file], { NIMBUS_DATA_DIR: join(dir, 'data'), ...listEnv(dns) });
  t.is(result.code, 0, result.stderr);
  const printed = JSON.parse(result.stdout.trim()) as { verdict: string; score: number; report: string[] };
  t.is(printed.verdict, 'spam');
  t.is(printed.score, 6);
  t.true(printed.report.includes('dnsbl:zen=listed(sbl+xbl)'), printed.report.join(' '));
  t.is(dns.asked('7.113.0.203.zen.test', 'A'), 1);
});
