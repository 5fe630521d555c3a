/**
 * The Subject of a raw header block, unfolded and with its RFC 2047 encoded words decoded, for
 * the local message history (NIMBUS_HISTORY_SUBJECTS=yes). Made for display: a word in a charset
 * Node cannot decode is kept as it was written, and nothing here ever throws on hostile input.
 */
const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;
/** Longer subjects are cut: the history is a list to read, not an archive. */
const MAX_LENGTH = 500;

export function subjectOf(block: Buffer): string | null {
  const text = block.toString('utf8');
  const match = /(?:^|\n)subject[ \t]*:(.*(?:\r?\n[ \t].*)*)/i.exec(text);
  if (!match) return null;
  const unfolded = match[1]!.replace(/\r?\n(?=[ \t])/g, '').trim();
  // Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
  const joined = unfolded.replace(/(\?=)[ \t]+(?==\?)/g, '$1');
  const decoded = joined.replace(ENCODED_WORD, (word, charset: string, encoding: string, data: string) => decodeWord(word, charset, encoding, data));
  return decoded.slice(0, MAX_LENGTH);
}

function decodeWord(word: string, charset: string, encoding: string, data: string): string {
  try {
    const bytes = encoding.toLowerCase() === 'b' ? Buffer.from(data, 'base64') : qBytes(data);
    return new TextDecoder(charset.split('*')[0]!.toLowerCase()).decode(bytes);
  } catch {
    return word;
  }
}

function qBytes(data: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (c === '_') bytes.push(0x20);
    else if (c === '=' && /^[0-9a-fA-F]{2}$/.test(data.slice(i + 1, i + 3))) {
      bytes.push(parseInt(data.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(bytes);
}
