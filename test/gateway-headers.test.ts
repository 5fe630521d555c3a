import test from 'ava';
import { formatVerdictHeaders, foldHeader } from '../src/scan/headers.js';
import { splitFields, stripVerdictFields, tagSubject, undoEdits } from '../src/scan/header-block.js';
import { formatReceived } from '../src/gateway/received.js';

test('verdict headers follow DESIGN.md: spam gets X-Spam-Flag, one star per point', (t) => {
  const fields = formatVerdictHeaders({
    verdict: 'spam',
    score: 12,
    required: 5,
    parts: [
      { source: 'dns-list', list: 'zen', status: 'listed', detail: 'sbl+xbl' },
      { source: 'reputation', label: 'ip=203.0.113.7', verdict: 'spam', score: 0.97 },
    ],
    tests: ['NIMBUS_IP', 'NIMBUS_IMAGE'],
  });
  t.deepEqual(fields, [
    'X-Nimbus-Verdict: spam; score=12.0; required=5.0',
    'X-Nimbus-Report: dnsbl:zen=listed(sbl+xbl) ip=203.0.113.7=spam(0.97)',
    'X-Spam-Flag: YES',
    'X-Spam-Status: Yes, score=12.0 required=5.0 tests=NIMBUS_IP,NIMBUS_IMAGE',
    'X-Spam-Level: ************',
  ]);
  const ham = formatVerdictHeaders({ verdict: 'ham', score: 1.5, required: 5 });
  t.false(ham.some((f) => f.startsWith('X-Spam-Flag')));
  t.true(ham.includes('X-Spam-Status: No, score=1.5 required=5.0 tests=none'));
  t.true(ham.includes('X-Spam-Level: *'));
});

test('long header fields are folded at whitespace within 78 characters and unfold to the original', (t) => {
  const parts = Array.from({ length: 12 }, (_, i) => ({ source: 'reputation' as const, label: `url:domain:example${i}.biz`, verdict: 'unknown' as const, score: 0 }));
  const [, report] = formatVerdictHeaders({ verdict: 'unknown', score: 0, required: 5, parts });
  const lines = report!.split('\r\n');
  t.true(lines.length > 1);
  for (const line of lines) t.true(line.length <= 78, line);
  for (const line of lines.slice(1)) t.regex(line, /^[ \t]/);
  t.is(report!.replace(/\r\n/g, ''), foldHeader(report!.replace(/\r\n/g, ''), 10_000));
});

test('stripping verdict fields removes their folded continuation lines and keeps every other byte', (t) => {
  const block = Buffer.from('A: 1\r\nX-Spam-Status: No,\r\n  tests=ALL\r\nx-nimbus-verdict: ham\r\nB: 2\r\n\tcontinued\r\n');
  const { block: out, removed } = stripVerdictFields(block);
  t.is(removed, 2);
  t.is(out.toString(), 'A: 1\r\nB: 2\r\n\tcontinued\r\n');
  t.is(splitFields(block).length, 4);
});

test('the subject tag is put in front once, and a Subject is added when missing', (t) => {
  t.is(tagSubject(Buffer.from('Subject: hi\r\nA: b\r\n'), '[SPAM]').block.toString(), 'Subject: [SPAM] hi\r\nA: b\r\n');
  t.is(tagSubject(Buffer.from('Subject: [SPAM] hi\r\n'), '[SPAM]').block.toString(), 'Subject: [SPAM] hi\r\n');
  t.is(tagSubject(Buffer.from('A: b\r\n'), '[SPAM]').block.toString(), 'A: b\r\nSubject: [SPAM]\r\n');
});

test('undoing the edit tagSubject reports gives back the header block byte for byte, odd blanks and a UTF-8 tag included', (t) => {
  const blocks = ['A: 1\r\nSubject:\t  hi there\r\n\tfolded\r\nB: 2\r\n', 'Subject:hi\n', 'A: b\r\n', 'Subject: Grüße\r\n'];
  for (const text of blocks) {
    const block = Buffer.from(text, 'utf8');
    const { block: tagged, edit } = tagSubject(block, '[SPÄM]');
    t.not(edit, null, text);
    t.false(tagged.equals(block));
    t.true(undoEdits(tagged, [edit!])!.equals(block), text);
  }
  t.is(tagSubject(Buffer.from('Subject: [SPAM] hi\r\n'), '[SPAM]').edit, null, 'nothing added, nothing to undo');
});

test('undoing edits takes out each recorded insertion whatever their order, and refuses bytes that do not hold them', (t) => {
  const original = Buffer.from('Received: x\r\nSubject: hi\r\n\r\nbody\r\n');
  const fields = 'X-Spam-Flag: YES\r\n';
  const edited = Buffer.from('Received: x\r\nX-Spam-Flag: YES\r\nSubject: [SPAM] hi\r\n\r\nbody\r\n');
  const edits = [
    { at: 13, text: fields, replaced: '' },
    { at: 13 + fields.length + 'Subject:'.length, text: ' [SPAM] ', replaced: ' ' },
  ];
  t.true(undoEdits(edited, edits)!.equals(original));
  t.true(undoEdits(edited, [...edits].reverse())!.equals(original));
  t.true(undoEdits(original, []) === original);
  t.is(undoEdits(original, edits), null, 'the recorded fields are not where the record says');
  t.is(undoEdits(edited.subarray(0, 20), edits), null, 'a truncated file');
});

test('the Received field names HELO, reverse name or [ip], the queue id and a single recipient', (t) => {
  const field = formatReceived({ helo: 'mx.example.org', clientHostname: null, clientIp: '::ffff:192.0.2.1', hostname: 'gw.test', protocol: 'ESMTPS', queueId: 'ABCDEF012345', recipients: ['bob@example.com'], date: new Date('2026-11-23T08:00:00Z') });
  t.is(field, 'Received: from mx.example.org ([192.0.2.1] [192.0.2.1])\r\n\tby gw.test (Nimbus) with ESMTPS id ABCDEF012345\r\n\tfor <bob@example.com>; Mon, 23 Nov 2026 08:00:00 +0000');
});
