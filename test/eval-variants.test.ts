/**
 * The evaluation's campaign copies (bench/eval/variants.ts, received.ts, plan.ts): a seed gives
 * the same copy byte for byte, and each copy really differs in the way its report says, read back
 * with mailparser and sharp, while the parts it does not change stay byte-identical.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import { simpleParser } from 'mailparser';
import sharp from 'sharp';
import type { CorpusMessage } from '../bench/eval/corpus.js';
import { normaliseMessage } from '../bench/eval/corpus.js';
import { getHeader, leaves, parseMime, serialiseMime } from '../bench/eval/mime.js';
import { buildPlan, DEFAULT_PLAN } from '../bench/eval/plan.js';
import { changeAddress, derivedAddress, handoffOf } from '../bench/eval/received.js';
import { handoffFromReceived, receivedHeaders } from '../src/fingerprint/received.js';
import { rngFor } from '../bench/eval/rng.js';
import { makeVariant, type ImageOp, type VariantRequest } from '../bench/eval/variants.js';
import { isPublicAddress } from '../src/fingerprint/ip.js';

/** A gradient with a dark box: enough structure for sharp to encode in any format. */
async function picture(width: number, height: number, format: 'png' | 'jpeg' | 'gif'): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const box = x > width / 4 && x < width / 2 && y > height / 3 && y < (2 * height) / 3;
      data[o] = box ? 20 : (x * 255) / width;
      data[o + 1] = box ? 30 : (y * 255) / height;
      data[o + 2] = box ? 200 : 128;
    }
  }
  const image = sharp(data, { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : format === 'jpeg' ? image.jpeg({ quality: 90 }).toBuffer() : image.gif().toBuffer();
}

const b64 = (bytes: Buffer): string => bytes.toString('base64').replace(/.{76}/g, '$&\n');

const PDF = Buffer.from(`%PDF-1.4\n${'1 0 obj << /Type /Catalog >> endobj\n'.repeat(20)}%%EOF\n`, 'latin1');
const SIGNATURE = '-----BEGIN PGP SIGNATURE-----\nVersion: GnuPG v1\n\niD8DBQE9abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\n=AbCd\n-----END PGP SIGNATURE-----';

/** A campaign message: QP text with a greeting and a footer, base64 HTML, an image, a PDF and a part no copy changes. */
async function campaignMessage(imageFormat: 'png' | 'jpeg' | 'gif' = 'jpeg'): Promise<Buffer> {
  const image = await picture(120, 90, imageFormat);
  const html = [
    '<html><body>',
    '<p>Hello Friend,</p>',
    '<p>Our <a href="http://deals.example.biz/offer?id=7">best offer</a> is waiting for you today.</p>',
    '<img src="cid:pic1">',
    '<p>Unsubscribe here</p>',
    '<p>Deals Ltd, 1 Main Street</p>',
    '<p>Copyright 2007 Deals Ltd</p>',
    '</body></html>',
  ].join('\n');
  const text = [
    'Dear Friend,',
    '',
    'Our best offer is waiting for you today at http://deals.example.biz/offer?id=7 =E2=80=94 do not miss it.',
    'Prices this low will not come back, so order now and save more than half.',
    '',
    'To unsubscribe reply with REMOVE',
    'Deals Ltd, 1 Main Street, Springfield',
    'Copyright 2007 Deals Ltd',
  ].join('\n');
  return Buffer.from([
    'Received: from mx.org.example (mx.org.example [198.51.100.20]) by mail.org.example (Postfix) with ESMTP id 1; Mon, 1 Jan 2007 10:00:05 +0000',
    'Received: from bot.dialup.example (bot.dialup.example [203.0.113.77]) by mx.org.example (Postfix) with SMTP id 2 for <jim@org.example>; Mon, 1 Jan 2007 10:00:01 +0000',
    'From: "Deals" <offers@deals.example.biz>',
    'To: jim@org.example',
    'Subject: Best offer',
    'Date: Mon, 1 Jan 2007 10:00:00 +0000',
    'Message-ID: <abc123@deals.example.biz>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    'This is a multi-part message in MIME format.',
    '--outer',
    'Content-Type: multipart/related; boundary="inner"',
    '',
    '--inner',
    'Content-Type: text/plain; charset="utf-8"',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    text,
    '--inner',
    'Content-Type: text/html; charset="us-ascii"',
    'Content-Transfer-Encoding: base64',
    '',
    b64(Buffer.from(html)),
    '--inner',
    `Content-Type: image/${imageFormat}; name="offer.${imageFormat}"`,
    'Content-Transfer-Encoding: base64',
    'Content-ID: <pic1>',
    `Content-Disposition: inline; filename="offer.${imageFormat}"`,
    '',
    b64(image),
    '--inner--',
    '',
    '--outer',
    'Content-Type: application/pdf; name="price-list.pdf"',
    'Content-Transfer-Encoding: base64',
    'Content-Disposition: attachment; filename="price-list.pdf"',
    '',
    b64(PDF),
    '--outer',
    'Content-Type: application/pgp-signature',
    '',
    SIGNATURE,
    '--outer--',
    '',
  ].join('\n'));
}

const request = (copy: number, seed: string | number = 7): VariantRequest => ({
  seed,
  file: 'spam/example.eml',
  copy,
  recipient: { name: 'Anna Kowalski', address: 'anna.kowalski.12@org1.example' },
});

test('the same seed, message and copy number give a byte-identical copy; another seed or copy gives another', async (t) => {
  const message = await campaignMessage();
  const first = await makeVariant(message, request(1));
  const again = await makeVariant(message, request(1));
  t.true(first.bytes.equals(again.bytes));
  t.deepEqual(first.report, again.report);
  t.false(first.bytes.equals((await makeVariant(message, request(1, 8))).bytes));
  t.false(first.bytes.equals((await makeVariant(message, request(2))).bytes));
});

test('a copy goes to its recipient, greets them by name, carries new tokens and a new Message-ID', async (t) => {
  const message = await campaignMessage();
  const { bytes, report } = await makeVariant(message, request(3));
  const parsed = await simpleParser(bytes);
  t.is(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value[0]?.address : undefined, 'anna.kowalski.12@org1.example');
  t.is(parsed.messageId, report.messageId);
  t.not(parsed.messageId, '<abc123@deals.example.biz>');
  // The existing greeting "Dear Friend," / "Hello Friend," now names the recipient, in both alternatives.
  t.is(report.greeting.replaced, 2);
  t.regex(parsed.text ?? '', /^Dear Anna,/);
  t.notRegex(parsed.text ?? '', /Dear Friend/);
  t.regex(String(parsed.html), /<p>Hello Anna,<\/p>/);
  // Random tokens: reference, hash-buster words, a tracking parameter on the link.
  t.true((parsed.text ?? '').includes(`Ref: ${report.tokens.reference}`));
  t.true(String(parsed.html).includes(report.tokens.words.join(' ')));
  t.is(report.tokens.links, 2);
  t.regex(parsed.text ?? '', /http:\/\/deals\.example\.biz\/offer\?id=7&r=[A-Za-z0-9]{8} /);
  // The QP text kept its non-ASCII character (the em dash) through the edit.
  t.true((parsed.text ?? '').includes('\u2014 do not miss it'));
});

test('a copy shuffles the footer lines and keeps every one of them', async (t) => {
  const message = await campaignMessage();
  const original = await simpleParser(message);
  const { bytes, report } = await makeVariant(message, request(4));
  const parsed = await simpleParser(bytes);
  t.is(report.footer.shuffled, 2);
  const footer = ['To unsubscribe reply with REMOVE', 'Deals Ltd, 1 Main Street, Springfield', 'Copyright 2007 Deals Ltd'];
  const at = (text: string): number[] => footer.map((line) => text.indexOf(line));
  t.true(at(parsed.text ?? '').every((index) => index >= 0));
  t.notDeepEqual(at(parsed.text ?? '').map((x, i, all) => all.filter((y) => y < x).length), [0, 1, 2]);
  t.deepEqual(at(original.text ?? '').map((x, i, all) => all.filter((y) => y < x).length), [0, 1, 2]);
});

async function copiesByImageOp(format: 'png' | 'jpeg' | 'gif'): Promise<Map<ImageOp, { bytes: Buffer; report: Awaited<ReturnType<typeof makeVariant>>['report'] }>> {
  const message = await campaignMessage(format);
  const found = new Map<ImageOp, { bytes: Buffer; report: Awaited<ReturnType<typeof makeVariant>>['report'] }>();
  for (let copy = 1; copy < 40 && found.size < 3; copy++) {
    const variant = await makeVariant(message, request(copy));
    const op = variant.report.images[0]?.op;
    if (op && !found.has(op)) found.set(op, variant);
  }
  return found;
}

for (const format of ['jpeg', 'png', 'gif'] as const) {
  test(`${format} images are re-encoded, resized by 80-120% or given a border, and the message carries the changed image`, async (t) => {
    const original = await picture(120, 90, format);
    const copies = await copiesByImageOp(format);
    t.deepEqual([...copies.keys()].sort(), ['border', 'reencode', 'resize']);
    for (const [op, { bytes, report }] of copies) {
      const change = report.images[0]!;
      t.is(change.error, undefined);
      const parsed = await simpleParser(bytes);
      const image = parsed.attachments.find((part) => part.contentType.startsWith('image/'))!;
      t.is(image.contentType, `image/${format}`, op);
      t.false(image.content.equals(original), op);
      const meta = await sharp(image.content).metadata();
      t.is(meta.format, format === 'jpeg' ? 'jpeg' : format);
      t.is(change.after?.sha256, createHash('sha256').update(image.content).digest('hex'));
      if (op === 'reencode') {
        t.deepEqual([meta.width, meta.height], [120, 90]);
      } else if (op === 'resize') {
        t.true(change.factor! >= 0.8 && change.factor! <= 1.2);
        t.deepEqual([meta.width, meta.height], [change.after!.width, change.after!.height]);
        t.not(meta.width, 120);
        t.true(Math.abs(meta.width! - 120 * change.factor!) <= 1.01 && Math.abs(meta.height! - 90 * change.factor!) <= 1.01);
      } else {
        t.true(change.border! >= 1 && change.border! <= 4);
        t.deepEqual([meta.width, meta.height], [120 + 2 * change.border!, 90 + 2 * change.border!]);
      }
    }
  });
}

test('attachments are renamed with their extension kept and their bytes unchanged; untouched parts stay byte-identical', async (t) => {
  const message = await campaignMessage();
  const { bytes, report } = await makeVariant(message, request(5));
  const parsed = await simpleParser(bytes);
  const pdf = parsed.attachments.find((part) => part.contentType === 'application/pdf')!;
  const renamed = report.attachments.find((item) => item.from === 'price-list.pdf')!;
  t.regex(renamed.to, /^[a-z]+_\d+\.pdf$/);
  t.is(pdf.filename, renamed.to);
  t.true(pdf.content.equals(PDF));
  t.truthy(report.attachments.find((item) => item.from === 'offer.jpeg'));
  // Same structure, and the signature part and the preamble written back byte for byte.
  const before = leaves(parseMime(message.toString('latin1'))).map((leaf) => leaf.type);
  const after = leaves(parseMime(bytes.toString('latin1'))).map((leaf) => leaf.type);
  t.deepEqual(after, before);
  t.true(bytes.toString('latin1').includes(`--outer\nContent-Type: application/pgp-signature\n\n${SIGNATURE}\n--outer--`));
  t.true(bytes.toString('latin1').includes('\n\nThis is a multi-part message in MIME format.\n--outer\n'));
});

test('a message that is not edited is written back byte for byte by the MIME layer', async (t) => {
  const message = await campaignMessage('gif');
  t.is(serialiseMime(parseMime(message.toString('latin1'))), message.toString('latin1'));
  t.is(getHeader(parseMime(message.toString('latin1')), 'subject'), 'Best offer');
});

test('the sending IP is the hop that handed the message to the recipient\'s domain, skipping the recipient\'s own relays and fetchmail', (t) => {
  const raw = normaliseMessage(Buffer.from([
    'From offers@deals.example.biz  Mon Jan  1 10:00:00 2007',
    'Received: from localhost (localhost [127.0.0.1]) by desk.org.example (Postfix) with ESMTP id 9 for <jim@localhost>; Mon, 1 Jan 2007 10:00:09 +0000',
    'Received: from pop.org.example [198.51.100.30] by localhost with POP3 (fetchmail-5.9.0) for jim@localhost (single-drop); Mon, 1 Jan 2007 10:00:08 +0000',
    'Received: from mx.org.example (mx.org.example [198.51.100.20]) by mail.org.example (Postfix) with ESMTP id 1 for <jim@org.example>; Mon, 1 Jan 2007 10:00:05 +0000',
    'Received: from bot.dialup.example (HELO pc77) ([203.0.113.77]) by mx.org.example (Postfix) with SMTP id 2; Mon, 1 Jan 2007 10:00:01 +0000',
    'Received: from [10.0.0.5] by bot.dialup.example; Mon, 1 Jan 2007 09:59:00 +0000',
    'Subject: hi',
    '',
    'body',
    '',
  ].join('\r\n')));
  t.is(receivedHeaders(raw).length, 5);
  t.deepEqual(handoffOf(raw), { ip: '203.0.113.77', helo: 'bot.dialup.example', source: 'received' });
  // A mailing list is the hop that hands list mail over: its address, not the original poster's.
  t.is(handoffFromReceived([
    'from lists.example.net (lists.example.net [192.0.2.10]) by mx.org.example with ESMTP for <jim@org.example>',
    'from poster.example.com ([198.18.7.7]) by lists.example.net with ESMTP for <list@example.net>',
  ])?.ip, '192.0.2.10');
});

test('without a usable Received header the IP is derived from the message: public, stable, distinct per message', (t) => {
  const a = normaliseMessage(Buffer.from('Subject: a\n\nbody one\n'));
  const b = normaliseMessage(Buffer.from('Subject: b\n\nbody two\n'));
  t.is(handoffOf(a).source, 'derived');
  t.is(handoffOf(a).ip, handoffOf(a).ip);
  t.not(handoffOf(a).ip, handoffOf(b).ip);
  t.true(isPublicAddress(handoffOf(a).ip));
  t.is(derivedAddress('x'), derivedAddress('x'));
});

test('a copy\'s IP comes from the same /24 or from another network, reproducibly for a seed', (t) => {
  for (let i = 0; i < 50; i++) {
    const same = changeAddress(rngFor(1, 'ip', i), '203.0.113.77', 'same-net');
    t.regex(same, /^203\.0\.113\.\d+$/);
    t.not(same, '203.0.113.77');
    const other = changeAddress(rngFor(1, 'ip', i), '203.0.113.77', 'other-net');
    t.notRegex(other, /^203\.0\.113\./);
    t.true(isPublicAddress(other));
    t.is(changeAddress(rngFor(1, 'ip', i), '203.0.113.77', 'other-net'), other);
  }
  t.is(changeAddress(rngFor(1, 'ip'), '203.0.113.77', 'same'), '203.0.113.77');
});

test('a plan is the same for a seed: copies in order, the first one to a spam trap, every recipient unique', async (t) => {
  const message = (file: string, date: number, body: string): CorpusMessage => ({
    class: file.startsWith('spam') ? 'spam' : 'ham',
    file,
    path: file,
    raw: Buffer.from(`Received: from x (x [198.51.100.${date % 200}]) by mx.org.example\nSubject: s\n\n${body}\n`),
    date,
  });
  const spam = Array.from({ length: 12 }, (_, i) => message(`spam/${i}.eml`, 1000 - i, `spam ${i}`));
  const ham = Array.from({ length: 30 }, (_, i) => message(`ham/${i}.eml`, 2000 + i, `ham ${i}`));
  const options = { ...DEFAULT_PLAN, seed: 3 };
  const plan = buildPlan(spam, ham, options);
  const again = buildPlan(spam, ham, options);
  const key = (p: typeof plan): string[] => p.events.map((e) => `${e.kind}:${e.kind === 'spam' ? `${e.campaign}.${e.copy}` : e.message.file}:${e.gateway}:${e.ip}:${e.recipient.address}`);
  t.deepEqual(key(plan), key(again));
  t.notDeepEqual(key(plan), key(buildPlan(spam, ham, { ...options, seed: 4 })));
  t.is(plan.events.filter((e) => e.kind === 'spam').length, 12 * 8);
  // Campaigns start in Date order: the oldest message (spam/11) is campaign 0.
  t.is(plan.campaigns[0]!.message.file, 'spam/11.eml');
  for (const campaign of plan.campaigns) {
    const copies = plan.events.filter((e) => e.kind === 'spam' && e.campaign === campaign.index);
    t.deepEqual(copies.map((e) => (e.kind === 'spam' ? e.copy : -1)), [0, 1, 2, 3, 4, 5, 6, 7]);
    t.true(copies[0]!.kind === 'spam' && copies[0]!.trap && plan.gateways[copies[0]!.gateway]!.traps.includes(copies[0]!.recipient.address));
    t.true(copies.slice(1).every((e) => e.kind === 'spam' && !e.trap));
    t.is(copies[0]!.ip, campaign.handoff.ip);
  }
  const addresses = plan.events.filter((e) => !(e.kind === 'spam' && e.trap)).map((e) => e.recipient.address);
  t.is(new Set(addresses).size, addresses.length);
  // 1% of 30 ham rounds to 0, but at least one is reported by mistake, and sent again elsewhere.
  const mistaken = plan.events.filter((e) => e.kind === 'ham' && e.mistake);
  t.is(mistaken.length, 1);
  const resend = plan.events.find((e) => e.kind === 'ham' && e.resend)!;
  t.is(resend.kind === 'ham' ? resend.message.file : '', mistaken[0]!.kind === 'ham' ? mistaken[0]!.message.file : '?');
  t.not(resend.gateway, mistaken[0]!.gateway);
  t.true(resend.seq > mistaken[0]!.seq);
  // --limit keeps campaigns spread over the time order and scales ham alike.
  const limited = buildPlan(spam, ham, { ...options, limit: 4 });
  t.is(limited.campaigns.length, 4);
  t.is(limited.ham.length, 10);
});
