/**
 * Dot-stuffing (RFC 5321 4.5.2) and the end-of-data marker. A line starts after LF, so bare-LF
 * messages are stuffed the same way the receiving side unstuffs them. A message not ending in
 * CRLF gets one before the final dot: the only byte the transport itself has to add.
 */
const DOT = 0x2e;
const LF = 0x0a;
const NEWLINE_DOT = Buffer.from('\n.');
const STUFFED_DOT = Buffer.from('.');

export class DotStuffing {
  #atLineStart = true;
  #lastTwo = Buffer.from('\r\n');

  /** The next chunk of the message, stuffed (the chunk itself when it needs no dot). */
  stuff(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    // Native searches for "\n." instead of a loop over every byte: the message body is most of
    // what a relay touches, and most chunks need no dot at all (then they pass uncopied).
    const pieces: Buffer[] = [];
    let start = 0;
    if (this.#atLineStart && chunk[0] === DOT) pieces.push(STUFFED_DOT);
    for (let at = chunk.indexOf(NEWLINE_DOT); at !== -1; at = chunk.indexOf(NEWLINE_DOT, at + 1)) {
      pieces.push(chunk.subarray(start, at + 1), STUFFED_DOT);
      start = at + 1;
    }
    this.#atLineStart = chunk[chunk.length - 1] === LF;
    if (chunk.length >= 2) this.#lastTwo = Buffer.from(chunk.subarray(chunk.length - 2));
    else this.#lastTwo = Buffer.from([this.#lastTwo[1]!, chunk[0]!]);
    if (pieces.length === 0) return chunk;
    pieces.push(chunk.subarray(start));
    return Buffer.concat(pieces);
  }

  /** The end-of-data marker, with the CRLF the message lacks, if it does. */
  end(): Buffer {
    const endsWithCrlf = this.#lastTwo[0] === 0x0d && this.#lastTwo[1] === 0x0a;
    return Buffer.from(endsWithCrlf ? '.\r\n' : '\r\n.\r\n');
  }
}
