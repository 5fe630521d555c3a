import test from 'ava';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { prose } from '../fixtures/fingerprint/factory.js';

const FOOTER = ['-- ', "Irish Linux Users' Group: ilug@linux.ie", 'http://www.linux.ie/mailman/listinfo/ilug for (un)subscription information.', 'List maintainer: listmaster@linux.ie'].join('\r\n');

function mail(headers: readonly string[], body: string): Buffer {
  return Buffer.from(
    [
      'Received: from lists.example.net (lists.example.net [198.51.100.23]) by mx.example.org with ESMTP id 1; Mon, 23 Nov 2026 07:00:00 +0000',
      'From: Sender <sender@example.net>',
      'To: rcpt@example.org',
      'Subject: test',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      ...headers,
      '',
      body,
      '',
    ].join('\r\n'),
  );
}

const texts = async (raw: Buffer) => (await fingerprintMessage(raw)).fingerprints.map((f) => f.text);
const LIST_ID = "List-Id: Irish Linux Users' Group <ilug.linux.ie>";

test('list mail: the footer a List-Id list appends changes neither the body hash nor the links fingerprinted', async (t) => {
  const text = `${prose(60, 7)}\r\nsee http://www.example.com/notes for details`;
  const withFooter = await fingerprintMessage(mail([LIST_ID], `${text}\r\n\r\n${FOOTER}`));
  const bare = await fingerprintMessage(mail([LIST_ID], text));
  t.deepEqual(withFooter.fingerprints.map((f) => f.text), bare.fingerprints.map((f) => f.text));
  t.false(withFooter.fingerprints.some((f) => f.text === 'url:domain:linux.ie'));
  t.true(withFooter.fingerprints.some((f) => f.text === 'url:domain:example.com'), 'the author’s own link still counts');
  t.true(withFooter.skips.some((s) => s.reason === 'text-list-footer'));
  t.true(withFooter.skips.some((s) => s.reason === 'url-mailing-list'));
  t.is(withFooter.mailingList, 'ilug.linux.ie', 'scoring is told the list: its relay and links are the list’s');
});

test('list mail: links to the List-Id domain in the text are not fingerprinted, other links are', async (t) => {
  const prints = await texts(mail([LIST_ID], `${prose(40, 3)}\r\nthe archive http://www.linux.ie/pipermail/ilug/ and http://offers.example.biz/buy`));
  t.false(prints.includes('url:domain:linux.ie'));
  t.true(prints.includes('url:domain:example.biz'));
});

test('Yahoo!-Groups style list mail (Mailing-List header): the sponsor block and terms link at the end are cut', async (t) => {
  const sponsor = ['------------------------ Yahoo! Groups Sponsor ---------------------~-->', '4 DVDs Free Join Now', 'http://us.click.yahoo.com/pt6YBB/NXiEAA', '---------------------------------------------------------------------~->', '', 'Your use of Yahoo! Groups is subject to http://docs.yahoo.com/info/terms/'].join('\r\n');
  const text = prose(50, 11);
  const withSponsor = await texts(mail(['Mailing-List: list forteana@yahoogroups.com; contact forteana-owner@yahoogroups.com'], `${text}\r\n\r\n${sponsor}`));
  t.deepEqual(withSponsor, await texts(mail(['Mailing-List: list forteana@yahoogroups.com'], text)));
  t.false(withSponsor.includes('url:domain:yahoo.com'));
});

test('List-Unsubscribe alone is not list mail: a bulk sender’s own footer and its links are fingerprinted', async (t) => {
  const footer = ['______________________________', 'To stop these offers visit http://unsubscribe.example.biz/u?id=1'].join('\r\n');
  const text = prose(50, 5);
  const prints = await texts(mail(['List-Unsubscribe: <http://unsubscribe.example.biz/u?id=1>'], `${text}\r\n${footer}`));
  t.true(prints.includes('url:domain:example.biz'));
  t.is((await fingerprintMessage(mail(['List-Unsubscribe: <http://unsubscribe.example.biz/u?id=1>'], text))).mailingList, null);
  t.notDeepEqual(prints, await texts(mail(['List-Unsubscribe: <http://unsubscribe.example.biz/u?id=1>'], text)), 'the footer is part of the body hash');
});

test('list mail: trailing blocks longer than a footer (over 15 lines) stay part of the text', async (t) => {
  const long = ['-- ', ...Array.from({ length: 20 }, (_, i) => `${prose(8, 100 + i)} linux.ie`)].join('\r\n');
  const text = prose(40, 9);
  t.notDeepEqual(await texts(mail([LIST_ID], `${text}\r\n${long}`)), await texts(mail([LIST_ID], text)));
});

// A list message whose author links fill the cap of 100 URLs, with links of the list's own site
// before them in the text and a footer (after them) naming the list's site and a sponsor.
function busyListMail(authorLinks: number): { raw: Buffer; author: string[]; list: string[] } {
  const author = Array.from({ length: authorLinks }, (_, i) => `http://shop${i}.example.biz/item/${i}`);
  const site = Array.from({ length: 5 }, (_, i) => `http://www.linux.ie/pipermail/ilug/2026-November/${i}.html`);
  const footer = [FOOTER, 'Sponsored by http://sponsor.example.org/ad'].join('\r\n');
  const body = [`${prose(40, 13)}: the thread so far ${site.join(' ')}`, '', prose(30, 17), ...author, '', footer].join('\r\n');
  return { raw: mail([LIST_ID], body), author, list: [...site, 'http://www.linux.ie/mailman/listinfo/ilug', 'http://sponsor.example.org/ad'] };
}

test('list mail: the list’s links do not use up the 100 links fingerprinted per message, the author’s 100 links all count', async (t) => {
  const { raw, author, list } = busyListMail(100);
  const result = await fingerprintMessage(raw);
  t.deepEqual(result.urls, author);
  const prints = result.fingerprints.map((f) => f.text);
  t.true(prints.includes('url:domain:example.biz'));
  t.false(prints.includes('url:domain:linux.ie'));
  t.false(prints.includes('url:domain:example.org'), 'a link only in the footer is not fingerprinted');
  t.is(prints.filter((p) => p.startsWith('url:sha256:')).length, 100);
  t.false(result.skips.some((s) => s.reason === 'url-over-limit'), 'nothing of the author’s was dropped');
  t.deepEqual(result.skips.filter((s) => s.reason === 'url-mailing-list').map((s) => s.detail), [`${list.length} link(s) of the list's footer or site (ilug.linux.ie)`]);
});

test('list mail over the cap: each dropped link is counted once, list links as url-mailing-list and author links past 100 as url-over-limit', async (t) => {
  const { raw, author, list } = busyListMail(103);
  const result = await fingerprintMessage(raw);
  t.deepEqual(result.urls, author.slice(0, 100));
  t.deepEqual(result.skips.filter((s) => s.reason === 'url-over-limit').map((s) => s.detail), ['3 of 103']);
  t.deepEqual(result.skips.filter((s) => s.reason === 'url-mailing-list').map((s) => s.detail), [`${list.length} link(s) of the list's footer or site (ilug.linux.ie)`]);
});
