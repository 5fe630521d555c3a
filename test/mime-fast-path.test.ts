/**
 * The MIME fast path (src/fingerprint/mime-fast-path.ts) against mailparser, message by message:
 * for each shape it reads itself, what it gives (header lines, Received, Subject, text, HTML, no
 * attachments) is what mailparser gives, so the fingerprints cannot depend on which one parsed;
 * every other shape it leaves to mailparser.
 */
import test from 'ava';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { DEFAULT_LIMITS } from '../src/fingerprint/limits.js';
import { parseCommonMessage } from '../src/fingerprint/mime-fast-path.js';
import { parseWithMailparser } from '../src/fingerprint/parsed-message.js';
import { COMMON_SHAPES, LIBRARY_SHAPES } from '../fixtures/fingerprint/mime-shapes.js';

for (const [shape, message] of Object.entries(COMMON_SHAPES)) {
  test(`the fast path reads ${shape} as mailparser does`, async (t) => {
    const fast = parseCommonMessage(message, DEFAULT_LIMITS.maxParts);
    const library = await parseWithMailparser(message, DEFAULT_LIMITS);
    t.not(fast, null);
    if (!library.ok) return t.fail(library.error);
    t.deepEqual({ ...fast, headerLines: fast?.headerLines.map((h) => ({ ...h })) }, { ...library.parsed, headerLines: library.parsed.headerLines.map((h) => ({ ...h })) });
  });
}

for (const [shape, message] of Object.entries(LIBRARY_SHAPES)) {
  test(`${shape} is left to mailparser`, (t) => {
    t.is(parseCommonMessage(message, DEFAULT_LIMITS.maxParts), null);
  });
}

test('the fixtures exercise what fingerprints read: the Received hand-off, the list, the Subject and the text', async (t) => {
  const routed = await fingerprintMessage(COMMON_SHAPES['a us-ascii 7bit text']!, { tokens: true });
  t.is(routed.clientIp, '198.51.100.7');
  t.is(routed.mailingList, 'news.example.org');
  t.true(routed.fingerprints.some((f) => f.kind === 'body'));
  t.deepEqual(routed.urls, ['https://www.example.com/report?id=7']);
  const decoded = parseCommonMessage(COMMON_SHAPES['a quoted-printable UTF-8 text with soft breaks and an encoded-word Subject']!, DEFAULT_LIMITS.maxParts);
  t.is(decoded?.subject, 'Grüße aus Zürich');
  t.true(decoded?.text.startsWith('Grüße aus Zürich, das Angebot gilt bis Freitag und dann nicht mehr.'));
});

test('a multipart/alternative with more parts than maxParts is left to mailparser, which refuses it', async (t) => {
  const message = COMMON_SHAPES['a multipart/alternative with LF line ends, an empty text part and two HTML parts']!;
  t.is(parseCommonMessage(message, 3), null);
  t.false((await parseWithMailparser(message, { ...DEFAULT_LIMITS, maxParts: 3 })).ok);
  t.not(parseCommonMessage(message, 4), null);
  t.true((await parseWithMailparser(message, { ...DEFAULT_LIMITS, maxParts: 4 })).ok);
});
