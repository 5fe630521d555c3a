import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runNimbus, startGatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startScriptedServer } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

test.serial('SIGTERM lets the message in flight finish with 250 and then the process exits 0', async (t) => {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let arrived = false;
  const hop = await startScriptedServer({
    data: async () => {
      arrived = true;
      await released;
      return 'accept' as const;
    },
  });
  t.teardown(() => hop.stop());
  const gateway = await startGatewayProcess(t, { NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_RELAY_DOMAINS: 'example.com' });
  // Teardowns run last-registered first: a held message is let go before the gateway is stopped.
  t.teardown(() => release());
  const sending = swaks(gateway.port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
  await waitFor('the next hop to have the message', () => arrived, 60_000);
  gateway.child.kill('SIGTERM');
  await waitFor('the gateway to react to SIGTERM', () => gateway.output().includes('"signal":"SIGTERM"'), 30_000);
  release();
  const result = await sending;
  t.is(result.exitCode, 0, result.output);
  t.true(result.replies.some((r) => r.startsWith('250 2.6.0 Ok: queued as')));
  t.is(await gateway.exited, 0, gateway.output());
  t.is(hop.messages.length, 1);
  t.regex(gateway.output(), /"event":"gateway.message".*"action":"deliver"/);
});

test.serial('a bad configuration value stops nimbus gateway with exit code 78 naming the variable', async (t) => {
  const { code, stderr } = await runNimbus(['gateway'], { NIMBUS_MAX_MESSAGE_SIZE: 'lots' });
  t.is(code, 78);
  t.regex(stderr, /NIMBUS_MAX_MESSAGE_SIZE="lots"/);
});

test.serial('SIGHUP re-reads the env file: a relay domain added there is accepted without a restart', async (t) => {
  const port = await freePort();
  const dataDir = testDir(t, 'nimbus-gw-hup-');
  const envFile = join(dataDir, 'nimbus.env');
  writeFileSync(envFile, `NIMBUS_LISTEN=127.0.0.1:${port}\nNIMBUS_RELAY_DOMAINS=example.com\nNIMBUS_TRUSTED_NETWORKS=127.0.0.1/32\nNIMBUS_DATA_DIR=${dataDir}\n`);
  const gateway = await startGatewayProcess(t, { NIMBUS_ENV_FILE: envFile });
  const args = ['--local-interface', '127.0.0.2', '--to', 'x@other.example', '--from', 'a@example.net', '--quit-after', 'RCPT'];
  const before = await swaks(port, args);
  t.true(before.replies.includes('550 5.7.1 Relay access denied'), before.output);
  writeFileSync(envFile, `NIMBUS_LISTEN=127.0.0.1:${port}\nNIMBUS_RELAY_DOMAINS=example.com,other.example\nNIMBUS_TRUSTED_NETWORKS=127.0.0.1/32\nNIMBUS_DATA_DIR=${dataDir}\n`);
  gateway.child.kill('SIGHUP');
  await waitFor('the reload', () => gateway.output().includes('gateway.reloaded'), 30_000);
  const after = await swaks(port, args);
  t.true(after.replies.some((r) => r.startsWith('250 2.1.5')), after.output);
});
