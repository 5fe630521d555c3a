/**
 * The end-to-end proof, with real processes only: one `nimbus reputation`, `nimbus
 * gateway`s holding an admin or a sensor key, smtp-sink as next hop, swaks as the sending MTA,
 * and `nimbus report` run by the admin on the copy the gateway delivered.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { firstImage, firstRun, hamMessage, imageSpam, nextRun, reencoded } from '../fixtures/verdict/variants.js';
import { runNimbus, startReputationProcess, type ReputationProcess } from './helpers/nimbus.js';
import { lf, startSmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { testDir } from './helpers/temp.js';
import { dataFile, gateway, header, relayedMessage } from './helpers/verdict.js';
import { waitFor, waitForFiles } from './helpers/wait.js';

/** The link around the campaign's picture. */
const SPAM_LINK = 'http://uahernad.com/micro/64';
/** The address in the spam's own Received field: a public sender address. */
const FIRST_SENDER_IP = '82.81.145.134';
/** An image spam's first run: a GIF linked to the spammer's site, word salad around it. */
const imageSpamFirstRun = () => firstRun(SPAM_LINK, FIRST_SENDER_IP);
/** The campaign's next run comes from another network. */
const SECOND_SENDER_IP = '190.65.69.185';
const HAM_SENDER_IP = '93.184.216.34';

function participating(reputation: ReputationProcess, key: string): Record<string, string> {
  return {
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: reputation.url,
    NIMBUS_REPUTATION_KEY: key,
    NIMBUS_RELAY_DOMAINS: 'example.com',
    // A cold service on a shared 2-core machine: the budget is not what these tests are about.
    NIMBUS_LOOKUP_TIMEOUT_MS: '5000',
  };
}

test('an image spam reported at gateway A is tagged at gateway B when it comes back re-encoded, resized and re-worded; ham through B is untouched', async (t) => {
  const reputation = await startReputationProcess(t);
  const [admin, sensor] = await Promise.all([reputation.addKey('admin'), reputation.addKey('sensor')]);
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  // A delivers into its own Maildir (no next hop): the user's mailbox the report is made from.
  const [a, b] = await Promise.all([
    gateway(t, { ...participating(reputation, admin.token), NIMBUS_HOSTNAME: 'gw-a.nimbus.test' }),
    gateway(t, { ...participating(reputation, sensor.token), NIMBUS_HOSTNAME: 'gw-b.nimbus.test', NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` }),
  ]);
  const work = testDir(t, 'nimbus-verdict-work-');

  // 1. Gateway A receives the image spam; nobody knows it yet.
  const spam = await imageSpamFirstRun();
  const spamFile = dataFile(work, 'spam.eml', spam);
  const first = await swaks(a.port, ['--xclient', `ADDR=${FIRST_SENDER_IP} HELO=bzq-82-81-145-134.red.bezeqint.net`, '--from', 'sccywmjiy@bezeqint.net', '--to', 'alice@example.com', '--data', `@${spamFile}`]);
  t.is(first.exitCode, 0, first.output);
  const [delivered] = await waitForFiles(join(a.dataDir, 'maildir', 'new'), 1);
  t.deepEqual(header(readFileSync(delivered!), 'X-Spam-Flag'), [], 'the first copy is not known as spam anywhere');

  // 2. The user reports it: A's admin runs `nimbus report --spam` on the delivered copy.
  const report = await runNimbus(['report', '--spam', delivered!], a.env);
  t.is(report.code, 0, report.stderr);
  t.regex(report.stdout, /reported as spam: \d+ fingerprints learnt locally; service: sent/);

  // 3. The campaign's next run reaches gateway B from another sender and network.
  const { message: variant, image } = await nextRun(spam, SPAM_LINK);
  t.false(image.equals((await firstImage(spam)).bytes));
  const variantFile = dataFile(work, 'variant.eml', variant);
  const second = await swaks(b.port, ['--xclient', `ADDR=${SECOND_SENDER_IP} HELO=mail.offers-mail.example`, '--from', 'care@offers-mail.example', '--to', 'bob@example.com', '--data', `@${variantFile}`]);
  t.is(second.exitCode, 0, second.output);
  const [spamDump] = await waitForFiles(sink.dir, 1);
  const atB = relayedMessage(readFileSync(spamDump!));
  t.deepEqual(header(atB, 'X-Spam-Flag'), ['YES'], atB.toString('latin1').slice(0, 2000));
  const [nimbusReport] = header(atB, 'X-Nimbus-Report');
  t.regex(nimbusReport ?? '', /image:phash256:[0-9a-f]{12}\.\.\.=spam\(/, 'the report names the picture, matched by its perceptual hash');
  t.regex(nimbusReport ?? '', /image:sha256:[0-9a-f]{12}\.\.\.=unknown/, 'the re-encoded bytes themselves were never seen');
  t.regex(header(atB, 'X-Spam-Status')[0] ?? '', /^Yes, score=[\d.]+ required=5\.0 tests=.*NIMBUS_IMAGE/);
  t.regex(header(atB, 'X-Nimbus-Verdict')[0] ?? '', /^spam; score=/);
  const sentBody = lf(variant).subarray(lf(variant).indexOf('\n\n'));
  t.true(atB.subarray(atB.length - sentBody.length).equals(sentBody), 'the body is relayed as sent');
  const added = atB.subarray(0, atB.indexOf('From: '));
  t.true(added.every((byte) => byte < 0x80), `the gateway's fields are ASCII, so a 7-bit message stays 7-bit: ${added.toString('utf8')}`);

  // 4. An ordinary message through B: verdict headers say no, nothing else changes.
  const ham = hamMessage({ from: 'Anna <anna@partner.example>', to: 'bob@example.com', subject: 'Minutes of Thursday', messageId: 'ham-1@partner.example' });
  const hamFile = dataFile(work, 'ham.eml', ham);
  const third = await swaks(b.port, ['--xclient', `ADDR=${HAM_SENDER_IP} HELO=mail.partner.example`, '--from', 'anna@partner.example', '--to', 'bob@example.com', '--data', `@${hamFile}`]);
  t.is(third.exitCode, 0, third.output);
  const hamDump = (await waitForFiles(sink.dir, 2)).find((file) => file !== spamDump)!;
  const hamAtB = relayedMessage(readFileSync(hamDump));
  t.deepEqual(header(hamAtB, 'X-Spam-Flag'), []);
  t.regex(header(hamAtB, 'X-Spam-Status')[0] ?? '', /^No, /);
  const sent = lf(ham);
  t.true(hamAtB.subarray(hamAtB.length - sent.length).equals(sent), 'the whole message, header block and body, is relayed byte for byte after the prepended fields');
  t.is(readdirSync(sink.dir).length, 2);
});

/*
 * Regression (fixed in 02ca24a): a fuzzy lookup used to answer from the nearest stored neighbour
 * only. Gateway B records the copy it tagged and uploads that record; the copy's own entry (seen
 * once, a sensor's say-so: `unknown`) then hid the admin's report on the original from every
 * gateway, and the network protected against one copy per variant.
 */
test('a reported image still counts as spam at a third gateway after gateway B has recorded and uploaded a copy, even in a run sharing nothing else', async (t) => {
  const reputation = await startReputationProcess(t);
  const [admin, sensorB, sensorC] = await Promise.all([reputation.addKey('admin'), reputation.addKey('sensor'), reputation.addKey('sensor')]);
  const sink = await startSmtpSink();
  t.teardown(() => sink.stop());
  const work = testDir(t, 'nimbus-verdict-work-');
  const spam = await imageSpamFirstRun();
  const spamFile = dataFile(work, 'spam.eml', spam);
  // The admin reports the original from a terminal: no gateway needed for that.
  const report = await runNimbus(['report', '--spam', spamFile], { ...participating(reputation, admin.token), NIMBUS_DATA_DIR: join(work, 'admin') });
  t.is(report.code, 0, report.stderr);

  const next = { NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}` };
  const [b, c] = await Promise.all([gateway(t, { ...participating(reputation, sensorB.token), ...next }), gateway(t, { ...participating(reputation, sensorC.token), ...next })]);
  const variantFile = dataFile(work, 'variant.eml', (await nextRun(spam, SPAM_LINK)).message);
  const send = (port: number) => swaks(port, ['--xclient', `ADDR=${SECOND_SENDER_IP}`, '--from', 'care@offers-mail.example', '--to', 'bob@example.com', '--data', `@${variantFile}`]);

  t.is((await send(b.port)).exitCode, 0);
  const [atB] = await waitForFiles(sink.dir, 1);
  t.deepEqual(header(relayedMessage(readFileSync(atB!)), 'X-Spam-Flag'), ['YES'], 'B tags the copy (the first part of the E2E proof)');
  await waitFor('B uploads its statistics record', () => b.logLines().some((line) => line.event === 'stats.upload.batch'), 20_000);

  t.is((await send(c.port)).exitCode, 0);
  const atC = (await waitForFiles(sink.dir, 2)).find((file) => file !== atB)!;
  const copy = relayedMessage(readFileSync(atC));
  t.deepEqual(header(copy, 'X-Spam-Flag'), ['YES'], header(copy, 'X-Nimbus-Report')[0]);

  // A run with nothing else in common (new words, new link, PNG at 75 %): the picture alone is enough.
  const alone = imageSpam({
    from: 'News <news@other-run.example>',
    to: 'bob@example.com',
    subject: 'Weekly picks',
    messageId: 'variant-2@other-run.example',
    text: 'Good morning,\n\nthe garden centre opens its summer season with a concert on the lawn and\nfresh strawberries from the farms nearby, come and bring the whole family along.',
    link: 'https://summer-picks.example/today',
    image: await sharp(await reencoded((await firstImage(spam)).bytes, 0.75, 90)).png().toBuffer(),
    imageType: 'image/png',
    imageName: 'picks.png',
  });
  const sent = await swaks(c.port, ['--xclient', 'ADDR=201.17.40.9', '--from', 'news@other-run.example', '--to', 'bob@example.com', '--data', `@${dataFile(work, 'alone.eml', alone)}`]);
  t.is(sent.exitCode, 0, sent.output);
  const atCAlone = (await waitForFiles(sink.dir, 3)).find((file) => file !== atB && file !== atC)!;
  const picture = relayedMessage(readFileSync(atCAlone));
  t.regex(header(picture, 'X-Spam-Status')[0] ?? '', /^Yes, score=[\d.]+ required=5\.0 tests=NIMBUS_IMAGE$/, header(picture, 'X-Nimbus-Report')[0]);
});
