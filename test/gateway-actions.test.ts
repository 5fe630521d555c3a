import test from 'ava';
import { rmSync } from 'node:fs';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { startGateway } from '../src/gateway/server.js';
import { GTUBE } from '../src/scan/gtube.js';
import type { GatewayHooks } from '../src/gateway/hooks.js';
import type { ProcessedMessage } from '../src/scan/recorder.js';
import { Scanner } from '../src/scan/scanner.js';
import type { ScanResult } from '../src/scan/types.js';
import { startScriptedServer, startTap } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

async function setup(env: Record<string, string>, hooks: GatewayHooks = {}) {
  const hop = await startScriptedServer({});
  const dataDir = tempDir('nimbus-gw-act-');
  const config = loadConfig({
    NIMBUS_LISTEN: '127.0.0.1:0',
    NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`,
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_LOG_LEVEL: 'silent',
    ...env,
  });
  const gw = await startGateway(config, createLogger('silent'), hooks);
  return {
    hop,
    port: gw.address.port,
    stop: async () => {
      await gw.close();
      await hop.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

test('with NIMBUS_SPAM_ACTION=reject a GTUBE message gets 550 5.7.1 and the next hop never sees DATA', async (t) => {
  const { hop, port, stop } = await setup({ NIMBUS_SPAM_ACTION: 'reject' });
  try {
    const result = await swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--body', GTUBE]);
    t.true(result.replies.includes('550 5.7.1 Message rejected as spam'), result.output);
    t.is(hop.dataStarted, 0);
  } finally {
    await stop();
  }
});

test('a scanner that throws does not lose the mail: it is relayed with verdict unknown', async (t) => {
  const { hop, port, stop } = await setup({}, { scanner: { scan: async () => Promise.reject(new Error('analysis bug')) } });
  try {
    const result = await swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    t.is(result.exitCode, 0, result.output);
    t.regex(hop.messages[0]!.bytes.toString(), /\r\nX-Nimbus-Verdict: unknown; score=0\.0; required=5\.0\r\n/);
  } finally {
    await stop();
  }
});

test('a spam-trap recipient is accepted by the gateway and never sent to the next hop as RCPT', async (t) => {
  const seen: ScanResult[] = [];
  const env = { NIMBUS_SPAMTRAPS: 'trap@example.com', NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'silent' };
  const scanner = new Scanner({ policy: loadConfig(env), lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: createLogger('silent') });
  const { hop, port, stop } = await setup(env, { scanner: { scan: async (request) => { const result = await scanner.scan(request); seen.push(result); return result; } } });
  try {
    const result = await swaks(port, ['--to', 'trap@example.com,bob@example.com', '--from', 'a@example.org']);
    t.is(result.exitCode, 0, result.output);
    t.deepEqual(hop.messages[0]!.rcptTo, ['bob@example.com']);
    t.deepEqual(seen[0]!.trapHits, ['trap@example.com']);
  } finally {
    await stop();
  }
});

test('the observer is awaited before the sender gets its final reply, and sees the next hop reply', async (t) => {
  const processed: ProcessedMessage[] = [];
  let releaseObserver: () => void = () => undefined;
  const observerGate = new Promise<void>((resolve) => (releaseObserver = resolve));
  let entered = false;
  const { port, stop } = await setup({}, {
    observer: {
      processed: async (message) => {
        entered = true;
        await observerGate;
        processed.push(message);
      },
    },
  });
  // Between swaks and the gateway: the final reply is seen the moment the gateway writes it.
  const tap = await startTap(port);
  try {
    let swaksEnded = false;
    const sending = swaks(tap.port, ['--to', 'bob@example.com', '--from', 'a@example.org']).then((r) => ((swaksEnded = true), r));
    await waitFor('the observer to be entered', () => entered);
    // A reply written before or as the observer was entered has reached the tap after one turn of
    // the event loop (the gateway runs in this process); two, to be safe.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    const done = swaksEnded || /^250 2\.6\.0 /m.test(tap.fromServer());
    t.false(done, 'no final reply while the observer has not finished');
    releaseObserver();
    const result = await sending;
    t.is(result.exitCode, 0, result.output);
    t.is(processed.length, 1);
    t.is(processed[0]!.nextHop?.code, 250);
    t.is(processed[0]!.scan.verdict, 'unknown');
  } finally {
    releaseObserver();
    await tap.stop();
    await stop();
  }
});

test('with a quarantine sink, a quarantined message is stored, answered 250 and not relayed', async (t) => {
  const stored: Buffer[] = [];
  const { hop, port, stop } = await setup({ NIMBUS_SPAM_ACTION: 'quarantine' }, {
    quarantine: { store: async (_request, bytes) => (stored.push(bytes), 'Q1') },
  });
  try {
    const result = await swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--body', GTUBE]);
    t.is(result.exitCode, 0, result.output);
    t.is(stored.length, 1);
    t.true(stored[0]!.toString().includes('X-Spam-Flag: YES'));
    t.is(hop.messages.length, 0);
  } finally {
    await stop();
  }
});
