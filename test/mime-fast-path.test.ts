/**
 * The MIME fast path (src/fingerprint/mime-fast-path.ts) against mailparser, message by message:
 * for each shape it reads itself, what it gives (header lines, Received, Subject, text, HTML, and
 * each attachment's bytes, type and name) is what mailparser gives, so the fingerprints cannot
 * depend on which one parsed; every other shape it leaves to mailparser.
 */
import test, { type ExecutionContext } from 'ava';
import { fingerprintMessage } from '../src/fingerprint/index.js';
import { DEFAULT_LIMITS } from '../src/fingerprint/limits.js';
import { parseCommonMessage } from '../src/fingerprint/mime-fast-path.js';
import { parseWithMailparser, type ParsedMessage } from '../src/fingerprint/parsed-message.js';
import { COMMON_SHAPES, LIBRARY_SHAPES } from '../fixtures/fingerprint/mime-shapes.js';

/** What fingerprinting reads of a parse, as plain data: mailparser's attachments carry more (headers, checksum, ids). */
function readFields(parsed: ParsedMessage | null) {
  if (parsed === null) return null;
  return {
    ...parsed,
    headerLines: parsed.headerLines.map((h) => ({ ...h })),
    attachments: parsed.attachments.map(({ content, contentType, filename }) => ({ content, contentType, filename })),
  };
}

for (const [shape, message] of Object.entries(COMMON_SHAPES)) {
  test(`the fast path reads ${shape} as mailparser does`, async (t) => {
    const fast = parseCommonMessage(message, DEFAULT_LIMITS.maxParts);
    const library = await parseWithMailparser(message, DEFAULT_LIMITS);
    t.not(fast, null);
    if (!library.ok) return t.fail(library.error);
    t.deepEqual(readFields(fast), readFields(library.parsed));
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

/** Below `nodes` MIME nodes allowed the fast path leaves `message` to mailparser, which refuses it; at `nodes` both read it. */
async function partsLimitHolds(t: ExecutionContext, message: Buffer, nodes: number): Promise<void> {
  t.is(parseCommonMessage(message, nodes - 1), null);
  t.false((await parseWithMailparser(message, { ...DEFAULT_LIMITS, maxParts: nodes - 1 })).ok);
  t.not(parseCommonMessage(message, nodes), null);
  t.true((await parseWithMailparser(message, { ...DEFAULT_LIMITS, maxParts: nodes })).ok);
}

test('a multipart/alternative with more parts than maxParts is left to mailparser, which refuses it', async (t) => {
  await partsLimitHolds(t, COMMON_SHAPES['a multipart/alternative with LF line ends, an empty text part and two HTML parts']!, 4);
});

test('image spam is read with its attachments: the inline picture and the file, with the names mailparser decodes', async (t) => {
  const message = COMMON_SHAPES['image spam: a multipart/mixed of text alternatives, an inline GIF with a Content-ID and a named PDF']!;
  const parsed = parseCommonMessage(message, DEFAULT_LIMITS.maxParts);
  t.deepEqual(
    parsed?.attachments.map(({ contentType, filename }) => [contentType, filename]),
    [
      ['image/gif', 'offer.gif'],
      ['application/pdf', 'Rechnung März.pdf'],
    ],
  );
  const files = parseCommonMessage(COMMON_SHAPES['RFC 2231 filenames (charset, continuations), an encoded-word filename and an octet-stream named .jpg']!, DEFAULT_LIMITS.maxParts);
  t.deepEqual(
    files?.attachments.map(({ contentType, filename }) => [contentType, filename]),
    [
      ['application/pdf', '€ rates.pdf'],
      ['application/zip', 'Quartalsübersicht.zip'],
      ['application/msword', 'Bericht für Q3.doc'],
      ['image/jpeg', 'photo.JPG'],
    ],
  );
  const prints = await fingerprintMessage(message);
  t.true(prints.fingerprints.some((f) => f.kind === 'image'));
  t.true(prints.fingerprints.some((f) => f.kind === 'attachment' && f.label === 'Rechnung März.pdf'));
});

test('a nested message with more MIME nodes than maxParts is left to mailparser, which refuses it', async (t) => {
  // mixed, related, alternative, two texts, an image, a PDF: seven nodes.
  await partsLimitHolds(t, COMMON_SHAPES['three levels: mixed, related, alternative, with an image and a file']!, 7);
});
