/** Messages as admins keep them: one file may hold one message or an mbox of many. */

/**
 * Splits an mbox: a message starts at a `From ADDR DATE` line after an empty line (body lines
 * starting with `From ` are `>From ` in a well-formed mbox; the empty line and the date guard
 * against unescaped ones). A file not starting with `From ` is one message.
 */
export function splitMessages(raw: Buffer): Buffer[] {
  if (raw.subarray(0, 5).toString('latin1') !== 'From ') return [raw];
  const text = raw.toString('latin1');
  const starts = [0];
  for (const match of text.matchAll(/\r?\n\r?\n(From \S+[ \t][^\r\n]*\d[^\r\n]*)/g)) starts.push(match.index + match[0].length - match[1]!.length);
  return starts.map((start, i) => Buffer.from(text.slice(start, starts[i + 1] ?? text.length), 'latin1'));
}
