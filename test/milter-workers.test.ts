/**
 * `nimbus milter` with NIMBUS_WORKERS=2, as systemd runs it: both worker processes answer messages
 * from the one listening socket, and SIGTERM to the primary stops every worker cleanly (exit 0).
 */
import test from 'ava';
import { startNimbus } from './helpers/nimbus.js';
import { Peer } from './helpers/milter-peer.js';
import { freePort } from './helpers/ports.js';
import { testDir } from './helpers/temp.js';
import { waitFor } from './helpers/wait.js';

test('with NIMBUS_WORKERS=2 two worker processes answer messages, and SIGTERM stops them all with exit code 0', async (t) => {
  const port = await freePort();
  const milter = await startNimbus(t, ['milter'], { NIMBUS_MILTER_LISTEN: `127.0.0.1:${port}`, NIMBUS_WORKERS: '2', NIMBUS_DATA_DIR: testDir(t, 'nimbus-milter-workers-'), NIMBUS_LOG_LEVEL: 'info' });
  await milter.waitForLog('two workers listening', () => milter.events('milter.listening').length >= 2);
  const pids = () => new Set(milter.events('milter.message').map((line) => line.pid));
  // Which worker takes a connection is the kernel's choice: concurrent rounds reach both.
  for (let round = 0; round < 10 && pids().size < 2; round++) {
    const answers = await Promise.all(Array.from({ length: 4 }, async () => {
      const peer = new Peer(port);
      await peer.negotiate();
      peer.sendMessage('hello\r\n');
      const answer = await peer.answer();
      peer.socket.destroy();
      return answer.at(-1)!.command;
    }));
    t.deepEqual(answers, ['a', 'a', 'a', 'a']);
  }
  t.is(pids().size, 2, milter.output());
  t.false(pids().has(milter.pid), 'answered by the workers, not the primary');
  process.kill(milter.pid, 'SIGTERM');
  t.is(await milter.exited, 0, milter.output());
  await waitFor('both workers to log their stop', () => milter.events('milter.closed').length >= 2 || undefined, 5000);
});
