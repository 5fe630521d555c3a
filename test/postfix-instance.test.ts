/**
 * The throwaway Postfix the integration tests stand on: it must really deliver into its Maildir,
 * refuse unknown users of its domain, and leave nothing behind. If these fail, the content-filter
 * and proxy-filter tests would fail for reasons that are not Nimbus's.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { startPostfix } from './helpers/postfix.js';
import { swaks } from './helpers/swaks.js';

test('a throwaway Postfix delivers to its Maildir, refuses unknown users and is removed on stop', async (t) => {
  const postfix = await startPostfix({ mailboxes: ['alice'] });
  t.teardown(() => postfix.stop());
  const sent = await swaks(postfix.smtpPort, ['--from', 'sender@remote.test',
    '--to', 'alice@example.test', '--header', 'Subject: helper check', '--body', 'hello from the helper test']);
  t.is(sent.exitCode, 0, sent.output);
  const [message] = await postfix.waitForMail('alice', 1);
  t.regex(message!.toString(), /Subject: helper check/);
  await postfix.waitQueueEmpty();

  const refused = await swaks(postfix.reinjectPort, ['--from', 'sender@remote.test',
    '--to', 'nobody-here@example.test', '--body', 'x']);
  t.not(refused.exitCode, 0);
  t.regex(refused.output, /<\*\* 550 5\.1\.1/);
  t.deepEqual(await postfix.queued(), []);

  await postfix.stop();
  t.false(existsSync(postfix.dir));
});
