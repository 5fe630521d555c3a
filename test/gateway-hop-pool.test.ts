import test from 'ava';
import type { Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { startGateway } from '../src/gateway/server.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';

/** A next hop that counts its connections and can drop them all (as an idle timeout would). */
async function countingHop() {
  let connections = 0;
  let commands: string[] = [];
  const messages: string[] = [];
  const sockets = new Set<Socket>();
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    onMailFrom(address, _session, callback) {
      commands.push(`MAIL ${address.address}`);
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        messages.push(session.envelope.rcptTo.map((r) => r.address).join(','));
        callback(null, 'queued');
      });
    },
  });
  server.server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get connections() {
      return connections;
    },
    get commands() {
      return commands;
    },
    messages,
    dropAll() {
      for (const socket of sockets) socket.destroy();
      commands = [];
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function configFor(dataDir: string, hopPort: number) {
  return loadConfig({
    NIMBUS_LISTEN: '127.0.0.1:0',
    NIMBUS_DATA_DIR: dataDir,
    NIMBUS_RELAY_DOMAINS: 'example.com',
    NIMBUS_LOG_LEVEL: 'silent',
    NIMBUS_NEXT_HOP: `127.0.0.1:${hopPort}`,
  });
}

const send = (port: number, to = 'bob@example.com') => swaks(port, ['--to', to, '--from', 'a@example.org']);

test.serial('senders one after another, one message per connection, are relayed over one next-hop connection', async (t) => {
  const hop = await countingHop();
  const dataDir = tempDir('nimbus-gw-pool-');
  const gw = await startGateway(configFor(dataDir, hop.port), createLogger('silent'));
  try {
    for (let i = 0; i < 5; i++) {
      const result = await send(gw.address.port, `user${i}@example.com`);
      t.is(result.exitCode, 0, result.output);
    }
    t.deepEqual(hop.messages, ['user0@example.com', 'user1@example.com', 'user2@example.com', 'user3@example.com', 'user4@example.com']);
    t.is(hop.connections, 1);
  } finally {
    await gw.close();
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.serial('an idle next-hop connection that the next hop closed is replaced: the next sender still gets 250', async (t) => {
  const hop = await countingHop();
  const dataDir = tempDir('nimbus-gw-pool-');
  const gw = await startGateway(configFor(dataDir, hop.port), createLogger('silent'));
  try {
    t.is((await send(gw.address.port)).exitCode, 0);
    hop.dropAll();
    const after = await send(gw.address.port, 'carol@example.com');
    t.is(after.exitCode, 0, after.output);
    t.true(after.replies.some((r) => r.startsWith('250 2.6.0')), after.output);
    t.deepEqual(hop.messages, ['bob@example.com', 'carol@example.com']);
    t.is(hop.connections, 2);
  } finally {
    await gw.close();
    await hop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test.serial('after a reload that changes NIMBUS_NEXT_HOP no message goes over a kept connection to the old one', async (t) => {
  const first = await countingHop();
  const second = await countingHop();
  const dataDir = tempDir('nimbus-gw-pool-');
  const gw = await startGateway(configFor(dataDir, first.port), createLogger('silent'));
  try {
    t.is((await send(gw.address.port)).exitCode, 0);
    gw.reload(configFor(dataDir, second.port));
    t.is((await send(gw.address.port, 'carol@example.com')).exitCode, 0);
    t.deepEqual(first.messages, ['bob@example.com']);
    t.deepEqual(second.messages, ['carol@example.com']);
  } finally {
    await gw.close();
    await first.stop();
    await second.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
