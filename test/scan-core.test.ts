import test from 'ava';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.js';
import { startGateway } from '../src/gateway/server.js';
import { createLogger } from '../src/log.js';
import { GTUBE } from '../src/scan/gtube.js';
import { AnalysisGate } from '../src/scan/analysis-gate.js';
import { Scanner } from '../src/scan/scanner.js';
import { MAX_ANALYSIS_BYTES } from '../src/scan/analyse.js';
import { offlineRequest } from '../src/scan/offline.js';
import { dnsListsFor, openCommandReputation, openScanRuntime, resolverFor } from '../src/scan/runtime.js';
import { startDnsServer } from './helpers/dns-server.js';
import { message, prose } from '../fixtures/fingerprint/factory.js';
import { startScriptedServer } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';
import { startSilentPeer } from './helpers/verdict.js';

const silent = createLogger('silent');

function proseMessage(seed: number): Buffer {
  return message({ parts: [{ type: 'text/plain', content: prose(60, seed), encoding: '7bit' }] });
}

test('a scan that outlives NIMBUS_SCAN_TIMEOUT_MS goes on as unknown with tests=NIMBUS_SCAN_TIMEOUT, counted in nimbus_scans_total', async (t) => {
  // A reputation service that never answers, and a lookup budget longer than the scan's: only the scan budget can end the wait.
  const peer = await startSilentPeer(t);
  const dataDir = tempDir('nimbus-scan-timeout-');
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_LISTEN: '127.0.0.1:0',
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: peer.url,
    NIMBUS_REPUTATION_KEY: 'nmb_k_s',
    NIMBUS_LOOKUP_TIMEOUT_MS: '20000',
    NIMBUS_SCAN_TIMEOUT_MS: '300',
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_LOG_LEVEL: 'silent',
  });
  const hop = await startScriptedServer();
  const runtime = await openScanRuntime(config, silent);
  const gateway = await startGateway({ ...config, nextHop: { host: '127.0.0.1', port: hop.port } }, silent, { scanner: runtime.scanner, observer: runtime.recorder });
  t.teardown(async () => {
    await gateway.close();
    await runtime.close();
    await hop.stop();
  });
  const file = join(dataDir, 'message.eml');
  writeFileSync(file, proseMessage(1));
  const started = Date.now();
  const result = await swaks(gateway.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', file]);
  t.is(result.exitCode, 0, result.output);
  // Far below the 20 s the lookup alone would have waited.
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  const relayed = hop.messages[0]!.bytes.toString('latin1');
  t.regex(relayed, /\r\nX-Nimbus-Verdict: unknown; score=0\.0; required=5\.0\r\n/);
  t.regex(relayed, /\r\nX-Spam-Status: No, score=0\.0 required=5\.0 tests=NIMBUS_SCAN_TIMEOUT\r\n/);
  t.true(peer.requests('POST /v1/lookup') >= 1, 'the scan did ask the service');
  const metrics = await runtime.metrics.registry.getSingleMetricAsString('nimbus_scans_total');
  t.regex(metrics, /nimbus_scans_total\{outcome="timeout"\} 1/);
});

test('GTUBE is found in a message above the parse limit, which is searched as a stream and never parsed', async (t) => {
  const hop = await startScriptedServer();
  const dataDir = tempDir('nimbus-scan-gtube-');
  const config = loadConfig({ NIMBUS_DATA_DIR: dataDir, NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_LOG_LEVEL: 'silent' });
  const gateway = await startGateway(config, silent);
  t.teardown(async () => {
    await gateway.close();
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  // Lines of filler past the parse limit, GTUBE in the very last one.
  const filler = `${'x'.repeat(998)}\r\n`.repeat(Math.ceil((MAX_ANALYSIS_BYTES + 1024 * 1024) / 1000));
  const big = Buffer.from(`From: a@example.org\r\nTo: bob@example.com\r\nSubject: big\r\n\r\n${filler}${GTUBE}\r\n`);
  t.true(big.length > MAX_ANALYSIS_BYTES);
  const file = join(dataDir, 'big.eml');
  writeFileSync(file, big);
  const result = await swaks(gateway.address.port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--data', file, '--suppress-data']);
  t.is(result.exitCode, 0, result.output);
  const head = hop.messages[0]!.bytes.subarray(0, 4096).toString('latin1');
  t.regex(head, /\r\nX-Spam-Flag: YES\r\n/);
  t.regex(head, /tests=NIMBUS_GTUBE/);
});

test('the scan result gives each fingerprint its answer, weight and contribution, and the header edits as data', async (t) => {
  const dataDir = tempDir('nimbus-scan-result-');
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({ NIMBUS_DATA_DIR: dataDir, NIMBUS_SUBJECT_TAG: '[SPAM]', NIMBUS_LOG_LEVEL: 'silent' });
  const spam = proseMessage(2);
  const reputation = await openCommandReputation(config, silent);
  t.teardown(() => reputation.close());
  const before = await reputation.scanner.scan(offlineRequest('first', spam));
  t.is(before.verdict, 'unknown');
  t.true(before.fingerprints.every((result) => result.contribution === 0 && result.test === null));
  // The local admin's report convicts the text at once.
  const body = before.evidence!.fingerprints.filter((fingerprint) => fingerprint.kind === 'body');
  await reputation.feedback.report('spam', body, 'admin');
  const after = await reputation.scanner.scan(offlineRequest('second', spam));
  t.is(after.outcome, 'scanned');
  t.is(after.verdict, 'spam');
  const contributing = after.fingerprints.filter((result) => result.contribution > 0);
  t.deepEqual(contributing.map((result) => result.test), ['NIMBUS_BODY']);
  t.is(contributing[0]!.weight, config.weights.body);
  t.is(contributing[0]!.contribution, config.weights.body * contributing[0]!.reputation);
  t.deepEqual(after.tests, ['NIMBUS_BODY']);
  t.deepEqual(after.headers.add.map((field) => field.name), ['X-Nimbus-Verdict', 'X-Nimbus-Report', 'X-Spam-Flag', 'X-Spam-Status', 'X-Spam-Level']);
  t.deepEqual(after.headers.removePrefixes, ['x-nimbus-', 'x-spam-']);
  t.is(after.headers.subjectTag, '[SPAM]');
  t.true(after.timings.totalMs >= after.timings.analysisMs);
});

test('the DNS budget of a message never outlasts its scan: a message that waited for room to be analysed asks the lists only for what its scan has left', async (t) => {
  // Two clients a list never answers about, and room to analyse one message at a time.
  const dns = await startDnsServer(t, [{ name: 'zen.test', records: { '1.113.0.203.zen.test': { silent: true }, '2.113.0.203.zen.test': { silent: true } } }]);
  const config = loadConfig({ NIMBUS_DNS_SERVERS: dns.address, NIMBUS_DNS_LISTS: 'zen:zen.test:ip:3', NIMBUS_DNS_TIMEOUT_MS: '1500', NIMBUS_SCAN_TIMEOUT_MS: '3000' });
  const resolver = resolverFor(config);
  t.teardown(() => resolver.close());
  const scanner = new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, dnsLists: dnsListsFor(config, resolver, silent), log: silent, gate: new AnalysisGate({ maxConcurrent: 1, maxBytes: 1 << 30 }) });
  const request = (id: string, ip: string) => ({ ...offlineRequest(id, proseMessage(3)), client: { ip, helo: '', name: null, trusted: false } });
  const started = performance.now();
  const [first, second] = await Promise.all([scanner.scan(request('first', '203.0.113.1')), scanner.scan(request('second', '203.0.113.2'))]);
  // The first spends its whole DNS budget (1.5 s) while the second waits; the second then has
  // 1.5 s of its scan left, less the tenth kept for deciding, and its lists get that, not another 1.5 s.
  t.is(first.outcome, 'scanned');
  t.is(second.outcome, 'scanned', `the second message timed out (${Math.round(performance.now() - started)} ms)`);
  t.deepEqual(second.tests, ['NIMBUS_DNS_TEMPERROR']);
  t.is(second.dnsLists[0]!.failure, 'budget');
  t.true(second.timings.totalMs < 3000, `${Math.round(second.timings.totalMs)} ms`);
});
