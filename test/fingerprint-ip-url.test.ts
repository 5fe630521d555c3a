import test from 'ava';
import { createHash } from 'node:crypto';
import { ipFingerprints, isPublicAddress } from '../src/fingerprint/ip.js';
import { handoffFromReceived } from '../src/fingerprint/received.js';
import { extractUrls, registrableDomain, urlFingerprints } from '../src/fingerprint/url.js';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { message, prose } from '../fixtures/fingerprint/factory.js';

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

test('an IPv4 address gives ip:sha256 of its 4 bytes and net:sha256 of its /24', (t) => {
  const texts = ipFingerprints('203.0.113.7').map((f) => f.text);
  t.deepEqual(texts, [`ip:sha256:${sha256(Uint8Array.from([203, 0, 113, 7]))}`, `net:sha256:${sha256(Uint8Array.from([203, 0, 113]))}`]);
});

test('addresses in one /24 share the net fingerprint and not the ip one', (t) => {
  const [a, b] = [ipFingerprints('203.0.113.7'), ipFingerprints('203.0.113.200')];
  t.not(a[0]!.text, b[0]!.text);
  t.is(a[1]!.text, b[1]!.text);
});

test('an IPv6 address gives ip:sha256, ip:sha256-64 of its /64 and net:sha256 of its /48, whatever its spelling', (t) => {
  const a = ipFingerprints('2001:db8:1:2::7');
  const b = ipFingerprints('[IPv6:2001:0DB8:0001:0002:0000:0000:0000:0007]');
  t.deepEqual(a.map((f) => f.text), b.map((f) => f.text));
  t.deepEqual(a.map((f) => `${f.kind}:${f.algorithm}`), ['ip:sha256', 'ip:sha256-64', 'net:sha256']);
  t.is(ipFingerprints('2001:db8:1:2:ffff::1')[1]!.text, a[1]!.text);
});

test('an IPv4-mapped IPv6 address is the IPv4 address', (t) => {
  t.deepEqual(ipFingerprints('::ffff:203.0.113.7').map((f) => f.text), ipFingerprints('203.0.113.7').map((f) => f.text));
  t.deepEqual(ipFingerprints('not an address'), []);
});

test('without a client address the IP is the hop that handed the message to the site, read from Received', (t) => {
  t.false(isPublicAddress('10.1.2.3'));
  t.false(isPublicAddress('fe80::1'));
  t.is(
    handoffFromReceived([
      'from internal (internal [10.0.0.5]) by mx.example.org',
      'from mail.sender.example (mail.sender.example [198.51.100.23]) by gw.example.org',
      'from laptop (home [203.0.113.99]) by mail.sender.example',
    ])?.ip,
    '198.51.100.23',
  );
});

test('the context address wins over Received headers', async (t) => {
  const raw = message({ parts: [{ type: 'text/plain', content: prose(30, 1), encoding: '7bit' }] });
  const result = await fingerprintMessage(raw, { clientIp: '192.0.2.1' });
  t.true(result.fingerprints.some((f) => f.text === ipFingerprints('192.0.2.1')[0]!.text));
  const fromHeaders = await fingerprintMessage(raw, {});
  t.true(fromHeaders.fingerprints.some((f) => f.text === ipFingerprints('198.51.100.23')[0]!.text));
});

test('links come from text and HTML hrefs, normalised and deduplicated, fragments dropped', (t) => {
  const urls = extractUrls('Visit www.Example.COM/a and https://shop.example.co.uk/x?y=1#frag.', '<a href="http://cheap.pills.example.biz/buy">x</a><a href=\'HTTPS://SHOP.example.co.uk/x?y=1\'>y</a>');
  t.deepEqual(urls.sort(), ['http://cheap.pills.example.biz/buy', 'http://www.example.com/a', 'https://shop.example.co.uk/x?y=1'].sort());
});

test('addresses inside HTML markup other than href (xmlns, DOCTYPE, comments, styles) are not links; links written in the visible text are', (t) => {
  const html = [
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">',
    '<html xmlns:o="urn:schemas-microsoft-com:office:office" xmlns="http://www.w3.org/TR/REC-html40">',
    '<!-- http://comment.example.net/ --><style>@import url(http://style.example.org/a.css);</style>',
    '<body><img src="http://images.example.com/x.gif"><p>Visit http://written.example.biz/offer today</p>',
    '<a href="https://clicked.example.info/go">here</a></body></html>',
  ].join('\n');
  t.deepEqual(extractUrls('', html), ['https://clicked.example.info/go', 'http://written.example.biz/offer']);
});

test('the url domain is the registrable domain from the public suffix list, plus the SHA-256 of the full URL', (t) => {
  t.is(registrableDomain('https://a.b.shop.example.co.uk/x'), 'example.co.uk');
  t.is(registrableDomain('http://198.51.100.4/x'), '198.51.100.4');
  const prints = urlFingerprints(['https://a.example.com/1', 'https://b.example.com/2']).map((f) => f.text);
  t.deepEqual(prints, ['url:domain:example.com', `url:sha256:${sha256('https://a.example.com/1')}`, `url:sha256:${sha256('https://b.example.com/2')}`]);
});

test('a message gives url fingerprints of its links and caps their number', async (t) => {
  const links = Array.from({ length: 20 }, (_, i) => `<a href="http://www.example${i}.net/">l</a>`).join(' ');
  const raw = message({ parts: [{ type: 'text/html; charset=utf-8', content: `<p>${prose(30, 2)}</p>${links}`, encoding: '7bit' }] });
  const result = await fingerprintMessage(raw, {}, { maxUrls: 5 });
  t.is(result.urls.length, 5);
  t.is(result.fingerprints.filter((f) => f.text.startsWith('url:domain:')).length, 5);
  t.true(result.skips.some((s) => s.reason === 'url-over-limit'));
});
