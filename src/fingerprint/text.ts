/**
 * `body:minhash64`: a near-duplicate hash of the visible text. The text (HTML rendered to plain
 * text) is normalised to lower-case letter words, cut into overlapping word 3-shingles, and
 * summarised by 64 minimums of independent 32-bit hashes, each kept as its low 16 bits
 * (b-bit minhash). The share of equal positions estimates the Jaccard similarity of the shingle
 * sets, so a personalised greeting, a few replaced words or an appended random token change
 * only a few positions.
 */
import { FNV_OFFSET, FNV_PRIME, MIN_WORDS, SHINGLE_WORDS, SPACE, distinct, minhash, minimums } from './minhash.js';

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Visible text of an HTML document: no scripts, styles, comments or tags; entities decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|head|title)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi, decodeEntity);
}

/**
 * One character reference's text. A module function, not an arrow per call: V8 re-optimised that
 * arrow after every full GC in milter steady state (--trace-opt).
 */
function decodeEntity(whole: string, name: string): string {
  if (name[0] === '#') {
    const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
  }
  return ENTITIES[name.toLowerCase()] ?? whole;
}

/** Links and addresses are left out of the words: what `normalisedWords` drops before splitting. */
const LINK = /\b(?:https?:\/\/|www\.)\S+/g;

/** Lower-case words of letters only: digits, links, addresses and punctuation carry no identity here. */
export function normalisedWords(text: string): string[] {
  const cleaned = lowerCaseWithoutLinks(text.normalize('NFKC'));
  return ASCII_ONLY.test(cleaned) ? asciiWords(cleaned) : unicodeWords(cleaned);
}

/**
 * `minhash(normalisedWords(text))`, the `body:minhash64` of a visible text. ASCII text (NFKC
 * leaves it as it is) has its shingles hashed straight from the characters (asciiShingleHashes),
 * with no word strings; other text goes through the word list.
 */
export function bodyMinhash(text: string): string | null {
  if (!ASCII_ONLY.test(text)) return minhash(normalisedWords(text));
  const hashes = asciiShingleHashes(lowerCaseWithoutLinks(text));
  return hashes === null ? null : minimums(distinct(hashes));
}

/** The text in lower case with its links and addresses blanked: both ways to the words start here. */
function lowerCaseWithoutLinks(text: string): string {
  return withoutAddresses(text.toLowerCase().replace(LINK, ' '));
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** What `\s` matches in a JavaScript regular expression. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * Each run of non-space characters with an '@' inside it (a character of the run before and after
 * it) replaced by one space: what `.replace(/(?<!\S)\S+@\S+/g, ' ')` does, found from the '@'s
 * instead of tried at every run (that regex took 23 us of a 5 KB text). normalisedWords gives the
 * same words as with the regexes on the corpus's 4,768 files and 200,000 random strings of
 * letters, '@', Unicode spaces and surrogates.
 */
function withoutAddresses(text: string): string {
  let at = text.indexOf('@');
  if (at < 0) return text;
  let out = '';
  let copied = 0;
  while (at >= 0) {
    let start = at;
    while (start > 0 && !isSpace(text.charCodeAt(start - 1))) start--;
    let end = at + 1;
    while (end < text.length && !isSpace(text.charCodeAt(end))) end++;
    const inside = text.indexOf('@', start + 1);
    if (inside >= 0 && inside < end - 1) {
      out += `${text.slice(copied, start)} `;
      copied = end;
    }
    at = text.indexOf('@', end);
  }
  return out + text.slice(copied);
}

/** Runs of ASCII letters (`\p{L}` on ASCII) of two or more, scanned without a regular expression. */
function asciiWords(text: string): string[] {
  const words: string[] = [];
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) | 0x20 : 0;
    if (c >= 0x61 && c <= 0x7a) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      if (i - start >= 2) words.push(text.slice(start, i));
      start = -1;
    }
  }
  return words;
}

/**
 * The shingle hashes of asciiWords(text), in order (null under MIN_WORDS words), in one pass over
 * the characters: a word's characters are fed at once to the three shingles it belongs to (as
 * their first, second and third word), so no word string is made, each character is read once,
 * and the three independent multiply chains overlap in the CPU where shingleHash, word by word,
 * waits on each multiply. The same hashes as shingleHash over the word list. The characters are
 * read as bytes (ASCII text is its latin1 bytes): a typed array read is cheaper than charCodeAt.
 */
function asciiShingleHashes(text: string): Int32Array | null {
  const bytes = Buffer.from(text, 'latin1');
  // A word is 2 letters or more and a separator: at most a third of the characters, plus one.
  const hashes = new Int32Array(Math.floor(bytes.length / 3) + 1);
  let words = 0;
  // The shingles that began at the word before (after its first word) and at the one before that (after two).
  let first = 0;
  let second = 0;
  let i = 0;
  while (i < bytes.length) {
    let c = bytes[i]!;
    if (!isAsciiLetter(c)) {
      i++;
      continue;
    }
    const start = i;
    let h1 = FNV_OFFSET;
    let h2 = Math.imul(first ^ SPACE, FNV_PRIME);
    let h3 = Math.imul(second ^ SPACE, FNV_PRIME);
    do {
      h1 = Math.imul(h1 ^ c, FNV_PRIME);
      h2 = Math.imul(h2 ^ c, FNV_PRIME);
      h3 = Math.imul(h3 ^ c, FNV_PRIME);
      c = ++i < bytes.length ? bytes[i]! : 0;
    } while (isAsciiLetter(c));
    // A one-letter run is no word: the shingles under way go on as they were.
    if (i - start >= 2) {
      if (words >= SHINGLE_WORDS - 1) hashes[words - (SHINGLE_WORDS - 1)] = h3;
      words++;
      first = h1;
      second = h2;
    }
  }
  return words < MIN_WORDS ? null : hashes.subarray(0, words - SHINGLE_WORDS + 1);
}

/** `\p{L}` on ASCII, as asciiWords reads it. */
function isAsciiLetter(c: number): boolean {
  return ((c | 0x20) - 0x61) >>> 0 < 26;
}

function unicodeWords(text: string): string[] {
  const words: string[] = [];
  for (const match of text.matchAll(/\p{L}+/gu)) if (match[0].length >= 2) words.push(match[0]);
  return words;
}
