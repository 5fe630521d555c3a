import test from 'ava';
import { makeFingerprint, type Fingerprint } from '../src/fingerprint/types.js';
import type { LookupResult, Verdict } from '../src/reputation/api.js';
import { loadConfig } from '../src/config/index.js';
import { scoreMessage } from '../src/scan/score.js';

const policy = { weights: { ip: 4, net: 2, attachment: 8, image: 8, url: 4, body: 6, domain: 6 }, tagScore: 5 };

function answer(fingerprint: Fingerprint, verdict: Verdict, score: number): [string, LookupResult] {
  return [
    fingerprint.text,
    {
      item: fingerprint.text,
      verdict,
      score,
      confidence: 1,
      counters: { seen: 1, spam: 0, ham: 0, reporters: 1, firstSeen: null, lastSeen: null, adminVerdict: null },
      match: null,
    },
  ];
}

const image = makeFingerprint('image', 'phash', 'aa');
const ip = makeFingerprint('ip', 'sha256', 'bb');
const linkA = makeFingerprint('url', 'domain', 'spam.example');
const linkB = makeFingerprint('url', 'domain', 'spam2.example');
const body = makeFingerprint('body', 'minhash', 'cc');

test('a spam image alone crosses the tag score with its weight times its reputation', (t) => {
  const scored = scoreMessage([image, ip], new Map([answer(image, 'spam', 0.9)]), policy, { gtube: false });
  t.is(scored.score, 7.2);
  t.is(scored.verdict, 'spam');
  t.deepEqual(scored.parts.map((part) => part.test), ['NIMBUS_IMAGE']);
});

test('many spam links count once, at the strongest one', (t) => {
  const scored = scoreMessage([linkA, linkB], new Map([answer(linkA, 'spam', 0.5), answer(linkB, 'spam', 1)]), policy, { gtube: false });
  t.is(scored.score, 4);
  t.is(scored.verdict, 'unknown');
  t.is(scored.parts[0]?.fingerprint, linkB);
});

test('a sender with a good name earns points back, bulk adds nothing but says bulk', (t) => {
  // The engine scores a clean name 0 (its share of spam evidence): all of its weight comes back.
  const withHam = scoreMessage([ip, body], new Map([answer(ip, 'ham', 0), answer(body, 'spam', 1)]), policy, { gtube: false });
  t.is(withHam.score, 2);
  t.deepEqual(withHam.parts.map((part) => part.test), ['NIMBUS_IP_HAM', 'NIMBUS_BODY']);
  const doubted = scoreMessage([ip], new Map([answer(ip, 'ham', 0.25)]), policy, { gtube: false });
  t.is(doubted.score, -3, 'a ham name with some spam evidence earns back only its ham share');
  const domain = makeFingerprint('domain', 'dkim', 'goodbank.example');
  const bank = scoreMessage([domain, body], new Map([answer(domain, 'ham', 0), answer(body, 'spam', 1)]), policy, { gtube: false });
  t.deepEqual(bank.parts.map((part) => part.test), ['NIMBUS_BODY', 'NIMBUS_DOMAIN_HAM']);
  t.is(bank.score, 0, 'a verified sender domain with a good name lowers the score like any other kind');
  const newsletter = scoreMessage([body], new Map([answer(body, 'bulk', 0.8)]), policy, { gtube: false });
  t.is(newsletter.score, 0);
  t.is(newsletter.verdict, 'bulk');
});

test('GTUBE is spam even with no reputation at all', (t) => {
  const scored = scoreMessage([ip], new Map(), policy, { gtube: true });
  t.is(scored.verdict, 'spam');
  t.deepEqual(scored.parts.map((part) => part.test), ['NIMBUS_GTUBE']);
  t.true(scored.score >= 1000);
});

test('with the default weights a sender IP and network known as spam do not tag on their own, but tip a spam link over the tag score', (t) => {
  const defaults = loadConfig({});
  const net = makeFingerprint('net', 'sha256', 'dd');
  const known = new Map([answer(ip, 'spam', 1), answer(net, 'spam', 1)]);
  const alone = scoreMessage([ip, net, body], known, defaults, { gtube: false });
  t.true(alone.score < defaults.tagScore, `ip + net = ${alone.score}`);
  t.not(alone.verdict, 'spam');
  const linkOnly = scoreMessage([linkA], new Map([answer(linkA, 'spam', 1)]), defaults, { gtube: false });
  t.not(linkOnly.verdict, 'spam');
  const withLink = scoreMessage([ip, net, linkA], new Map([...known, answer(linkA, 'spam', 1)]), defaults, { gtube: false });
  t.is(withLink.verdict, 'spam');
});

/** An answer with the counters that say how it was learnt: labelled spam and ham messages, sightings. */
function learnt(fingerprint: Fingerprint, score: number, counters: { spam: number; ham: number; seen: number }): [string, LookupResult] {
  const [text, result] = answer(fingerprint, 'spam', score);
  return [text, { ...result, counters: { ...result.counters, ...counters } }];
}

test('an address and network labelled spam in many distinct messages and never ham count more, up to six times their weight', (t) => {
  const defaults = loadConfig({});
  const net = makeFingerprint('net', 'sha256', 'dd');
  const history = (messages: number) => new Map([learnt(ip, 1, { spam: messages, ham: 0, seen: 0 }), learnt(net, 1, { spam: messages, ham: 0, seen: 0 })]);
  const two = scoreMessage([ip, net, body], history(2), defaults, { gtube: false });
  t.is(two.score, 1, 'two messages: the configured weights (0.75 + 0.25)');
  const six = scoreMessage([ip, net, body], history(6), defaults, { gtube: false });
  t.is(six.score, 3, 'six messages: three times the weights');
  const twelve = scoreMessage([ip, net, body], history(12), defaults, { gtube: false });
  t.is(twelve.score, 6);
  t.is(twelve.verdict, 'spam', "a spammer's own server, labelled twelve times and never for ham, tags on its own");
  const hundred = scoreMessage([ip, net, body], history(100), defaults, { gtube: false });
  t.is(hundred.score, 6, 'six times the weight at most');
});

test('one ham message, an admin verdict or more sightings than labels keep an address a tie-breaker', (t) => {
  const defaults = loadConfig({});
  const net = makeFingerprint('net', 'sha256', 'dd');
  const withCounters = (counters: { spam: number; ham: number; seen: number }) => new Map([learnt(ip, 1, counters), learnt(net, 1, counters)]);
  const relayOfHam = scoreMessage([ip, net], withCounters({ spam: 40, ham: 1, seen: 0 }), defaults, { gtube: false });
  t.is(relayOfHam.score, 1, 'a list server the admin has ham from is not a spammer, however much spam it relayed');
  const unlabelledTraffic = scoreMessage([ip, net], withCounters({ spam: 40, ham: 0, seen: 41 }), defaults, { gtube: false });
  t.is(unlabelledTraffic.score, 1, 'seen more often than labelled: no ham report says nothing where ham goes unlabelled');
  const [text, result] = learnt(ip, 1, { spam: 40, ham: 0, seen: 0 });
  const overridden = scoreMessage([ip], new Map([[text, { ...result, counters: { ...result.counters, adminVerdict: 'spam' as const } }]]), defaults, { gtube: false });
  t.is(overridden.score, 0.75, "an admin's verdict is its own weight's worth, as ever");
});

test('a link labelled spam in many messages and never ham grows to 1.2 times its weight: not a tag alone, a tag with the address', (t) => {
  const defaults = loadConfig({});
  const link = scoreMessage([linkA], new Map([learnt(linkA, 0.99, { spam: 40, ham: 0, seen: 0 })]), defaults, { gtube: false });
  t.is(link.score, 4.75);
  t.not(link.verdict, 'spam', 'a link is not a whole message');
  const withAddress = scoreMessage([linkA, ip], new Map([learnt(linkA, 0.99, { spam: 40, ham: 0, seen: 0 }), answer(ip, 'spam', 0.9)]), defaults, { gtube: false });
  t.is(withAddress.verdict, 'spam');
  const withHam = scoreMessage([linkA, ip], new Map([learnt(linkA, 0.99, { spam: 40, ham: 2, seen: 0 }), answer(ip, 'spam', 0.9)]), defaults, { gtube: false });
  t.is(withHam.score, 4.64, 'a link the admin also has in wanted mail keeps its weight');
});

test('in list mail nothing grows: the relay and the links a list adds are the list\'s', (t) => {
  const defaults = loadConfig({});
  const net = makeFingerprint('net', 'sha256', 'dd');
  const history = new Map([learnt(ip, 1, { spam: 40, ham: 0, seen: 0 }), learnt(net, 1, { spam: 40, ham: 0, seen: 0 }), learnt(linkA, 0.99, { spam: 40, ham: 0, seen: 0 })]);
  const direct = scoreMessage([ip, net, linkA], history, defaults, { gtube: false });
  t.is(direct.score, 10.75);
  const relayed = scoreMessage([ip, net, linkA], history, defaults, { gtube: false, listMail: true });
  t.is(relayed.score, 4.96);
  t.not(relayed.verdict, 'spam');
});
