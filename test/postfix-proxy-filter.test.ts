/**
 * Nimbus as Postfix's before-queue proxy filter, end to end with a real Postfix and a real Nimbus
 * process:
 *
 *   swaks ─▶ Postfix smtpd (smtpd_proxy_filter=127.0.0.1:NIMBUS) ─▶ Nimbus ─▶ Postfix
 *     reinjection smtpd ─▶ queue ─▶ virtual ─▶ Maildir
 *
 * Postfix's public smtpd leaves the recipient check to the reinjection smtpd
 * (smtpd_reject_unlisted_recipient=no on the public one), so a refused recipient can only reach
 * swaks if Nimbus mirrors the next hop's RCPT reply back through the proxy. A spam rejection is
 * Nimbus's own 550 at end of DATA. In both cases nothing may be queued or delivered: no bounce is
 * ever needed.
 */
import test, { type ExecutionContext } from 'ava';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGatewayProcess, type GatewayProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startPostfix, type PostfixInstance } from './helpers/postfix.js';
import { swaks } from './helpers/swaks.js';
import { tempDir } from './helpers/temp.js';

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

interface Setup { postfix: PostfixInstance; nimbus: GatewayProcess; dir: string }

async function setUp(t: ExecutionContext): Promise<Setup> {
  const nimbusPort = await freePort();
  const postfix = await startPostfix({
    mailboxes: ['alice'],
    publicOptions: {
      smtpd_proxy_filter: `127.0.0.1:${nimbusPort}`,
      smtpd_proxy_timeout: '120s',
      smtpd_reject_unlisted_recipient: 'no',
    },
  });
  try {
    const nimbus = await startGatewayProcess(t, {
      NIMBUS_LISTEN: `127.0.0.1:${nimbusPort}`,
      NIMBUS_NEXT_HOP: `127.0.0.1:${postfix.reinjectPort}`,
      NIMBUS_RELAY_DOMAINS: postfix.domain,
      NIMBUS_SPAM_ACTION: 'reject',
      NIMBUS_REJECT_SCORE: '5',
    });
    return { postfix, nimbus, dir: tempDir('nimbus-pf-msg-') };
  } catch (error) {
    await postfix.stop();
    throw error;
  }
}

async function tearDown(setup: Setup): Promise<void> {
  await setup.nimbus.stop();
  await setup.postfix.stop();
  rmSync(setup.dir, { recursive: true, force: true });
}

/**
 * Nothing queued and nothing delivered, checked once Postfix has settled (every SMTP session
 * ended, the queue empty): a late delivery could only come from the queue, so none can follow.
 */
async function assertNothingQueued(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, setup: Setup): Promise<void> {
  await setup.postfix.waitSettled();
  t.deepEqual(await setup.postfix.queued(), [], setup.postfix.log());
  t.deepEqual(setup.postfix.maildir('alice').length, 0, 'nothing was delivered');
  t.deepEqual(/status=(sent|bounced|deferred)/.exec(setup.postfix.log())?.[0] ?? null, null, 'Postfix attempted no delivery');
}

test.serial('before-queue proxy filter: a recipient the next hop refuses is refused to the sending client at RCPT, and nothing is queued', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  const result = await swaks(setup.postfix.smtpPort, ['--from', 'sender@remote.test',
    '--to', `nobody-here@${setup.postfix.domain}`, '--body', 'to an unknown user']);
  t.not(result.exitCode, 0, result.output);
  // swaks marks a failed reply with <** ; the 550 5.1.1 is the reinjection smtpd's, mirrored.
  t.regex(result.output, /<\*\* +550[ -]5\.1\.1 .*nobody-here@/, result.output);
  t.notRegex(result.output, /~> DATA|-> DATA/, 'the transaction stopped before DATA');
  await assertNothingQueued(t, setup);
});

test.serial('before-queue proxy filter: with NIMBUS_SPAM_ACTION=reject, GTUBE is refused with a 5xx at end of DATA to the sending client, and nothing is queued', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  const file = join(setup.dir, 'gtube.eml');
  writeFileSync(file, ['From: <sender@remote.test>', `To: <alice@${setup.postfix.domain}>`, 'Subject: GTUBE test',
    'Message-ID: <gtube-proxy@remote.test>', '', GTUBE, ''].join('\n'));
  const result = await swaks(setup.postfix.smtpPort, ['--from', 'sender@remote.test',
    '--to', `alice@${setup.postfix.domain}`, '--data', `@${file}`]);
  t.not(result.exitCode, 0, result.output);
  t.regex(result.output, /<\*\* +5\d\d[ -]5\.7\.1/, result.output);
  await assertNothingQueued(t, setup);
});

test.serial('before-queue proxy filter: an ordinary message to a known recipient goes through Nimbus and is delivered once', async (t) => {
  const setup = await setUp(t);
  t.teardown(() => tearDown(setup));
  const result = await swaks(setup.postfix.smtpPort, ['--from', 'sender@remote.test',
    '--to', `alice@${setup.postfix.domain}`, '--header', 'Subject: proxied', '--body', 'an ordinary message']);
  t.is(result.exitCode, 0, `${result.output}\n${setup.postfix.log()}\n${setup.nimbus.output()}`);
  const [delivered] = await setup.postfix.waitForMail('alice', 1);
  t.regex(delivered!.toString('utf8'), /^X-Nimbus-Verdict: /m);
  t.regex(delivered!.toString('utf8'), /\(Nimbus\)/);
  // Settled: every session ended and the queue empty, so no second copy can still come.
  await setup.postfix.waitSettled();
  t.is(setup.postfix.maildir('alice').length, 1, 'delivered exactly once');
});
