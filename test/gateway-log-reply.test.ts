import test from 'ava';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { loadConfig } from '../src/config/index.js';
import { startGateway } from '../src/gateway/server.js';
import { createLogger } from '../src/log.js';
import { GTUBE } from '../src/scan/gtube.js';
import { startScriptedServer } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';

/** A gateway whose log lines are kept, in front of a scripted next hop. */
async function loggedGateway(t: import('ava').ExecutionContext, env: Record<string, string> = {}) {
  const hop = await startScriptedServer();
  const dataDir = tempDir('nimbus-log-reply-');
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(...chunk.toString().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)), done()) });
  const config = loadConfig({ NIMBUS_LISTEN: '127.0.0.1:0', NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_DATA_DIR: dataDir, NIMBUS_RELAY_DOMAINS: 'example.com', ...env });
  const gateway = await startGateway(config, createLogger('info', {}, sink));
  t.teardown(async () => {
    await gateway.close();
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { port: gateway.address.port, messageLines: () => lines.filter((line) => line.event === 'gateway.message') };
}

test('the reply a gateway.message log line records is the reply the sender got on the wire, accepted and rejected alike', async (t) => {
  const { port, messageLines } = await loggedGateway(t, { NIMBUS_SPAM_ACTION: 'reject', NIMBUS_REJECT_SCORE: '5' });
  const accepted = await swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
  const rejected = await swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org', '--body', GTUBE]);
  const [first, second] = messageLines();
  t.true(accepted.replies.includes(String(first!.reply)), `log: ${String(first!.reply)}; wire: ${accepted.replies.join(' | ')}`);
  t.regex(String(first!.reply), /^250 2\.6\.0 Ok: queued as [0-9A-F]{12}$/);
  t.true(rejected.replies.includes(String(second!.reply)), `log: ${String(second!.reply)}; wire: ${rejected.replies.join(' | ')}`);
});
