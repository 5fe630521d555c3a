import test from 'ava';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startScriptedServer, swaks, tempDir, waitFor, stopChild } from './helpers/smtp.js';

const ROOT = join(import.meta.dirname, '..');

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
  const port = await freePort();
  const dataDir = tempDir('nimbus-gw-proc-');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'gateway'], {
    cwd: ROOT,
    env: { ...process.env, NIMBUS_ENV_FILE: '', NIMBUS_LISTEN: `127.0.0.1:${port}`, NIMBUS_NEXT_HOP: `127.0.0.1:${hop.port}`, NIMBUS_DATA_DIR: dataDir, NIMBUS_RELAY_DOMAINS: 'example.com', NIMBUS_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor('the gateway to listen', () => {
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${logs}`);
      return logs.includes('gateway.listening');
    }, 60_000);
    const sending = swaks(port, ['--to', 'bob@example.com', '--from', 'a@example.org']);
    await waitFor('the next hop to have the message', () => arrived, 60_000);
    child.kill('SIGTERM');
    await waitFor('the gateway to react to SIGTERM', () => logs.includes('"signal":"SIGTERM"'), 30_000);
    release();
    const result = await sending;
    t.is(result.exitCode, 0, result.output);
    t.true(result.replies.some((r) => r.startsWith('250 2.6.0 Ok: queued as')));
    t.is(await exited, 0, logs);
    t.is(hop.messages.length, 1);
    t.regex(logs, /"event":"gateway.message".*"action":"deliver"/);
  } finally {
    release();
    await stopChild(child, 'SIGKILL');
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.serial('a bad configuration value stops nimbus gateway with exit code 78 naming the variable', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'gateway'], {
    cwd: ROOT,
    env: { ...process.env, NIMBUS_ENV_FILE: '', NIMBUS_MAX_MESSAGE_SIZE: 'lots' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  t.is(code, 78);
  t.regex(stderr, /NIMBUS_MAX_MESSAGE_SIZE="lots"/);
});

test.serial('SIGHUP re-reads the env file: a relay domain added there is accepted without a restart', async (t) => {
  const port = await freePort();
  const dataDir = tempDir('nimbus-gw-hup-');
  const envFile = join(dataDir, 'nimbus.env');
  writeFileSync(envFile, `NIMBUS_LISTEN=127.0.0.1:${port}\nNIMBUS_RELAY_DOMAINS=example.com\nNIMBUS_TRUSTED_NETWORKS=127.0.0.1/32\nNIMBUS_DATA_DIR=${dataDir}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'gateway'], {
    cwd: ROOT,
    env: { ...process.env, NIMBUS_ENV_FILE: envFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (logs += chunk.toString()));
  try {
    await waitFor('the gateway to listen', () => {
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${logs}`);
      return logs.includes('gateway.listening');
    }, 60_000);
    const args = ['--local-interface', '127.0.0.2', '--to', 'x@other.example', '--from', 'a@example.net', '--quit-after', 'RCPT'];
    const before = await swaks(port, args);
    t.true(before.replies.includes('550 5.7.1 Relay access denied'), before.output);
    writeFileSync(envFile, `NIMBUS_LISTEN=127.0.0.1:${port}\nNIMBUS_RELAY_DOMAINS=example.com,other.example\nNIMBUS_TRUSTED_NETWORKS=127.0.0.1/32\nNIMBUS_DATA_DIR=${dataDir}\n`);
    child.kill('SIGHUP');
    await waitFor('the reload', () => logs.includes('gateway.reloaded'), 30_000);
    const after = await swaks(port, args);
    t.true(after.replies.some((r) => r.startsWith('250 2.1.5')), after.output);
  } finally {
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
