import test from 'ava';
import { DotStuffing } from '../src/gateway/dot-stuffing.js';

/** RFC 5321 4.5.2 byte by byte: a dot that starts a line is doubled; the end is CRLF . CRLF. */
function stuffedByRule(chunks: readonly Buffer[]): Buffer {
  const out: number[] = [];
  let atLineStart = true;
  for (const chunk of chunks) {
    for (const byte of chunk) {
      if (atLineStart && byte === 0x2e) out.push(0x2e);
      out.push(byte);
      atLineStart = byte === 0x0a;
    }
  }
  const endsWithCrlf = Buffer.concat([Buffer.from('\r\n'), ...chunks]).subarray(-2).toString() === '\r\n';
  return Buffer.concat([Buffer.from(out), Buffer.from(endsWithCrlf ? '.\r\n' : '\r\n.\r\n')]);
}

function stuffed(chunks: readonly Buffer[]): Buffer {
  const stuffing = new DotStuffing();
  return Buffer.concat([...chunks.map((chunk) => stuffing.stuff(chunk)), stuffing.end()]);
}

test('dot-stuffing to the next hop doubles every line-leading dot and ends the data, however the message is cut into chunks', (t) => {
  let seed = 11;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const alphabet = ['.', '..', '\r\n', '\n', '\r', 'a', 'text '];
  for (let round = 0; round < 500; round++) {
    let text = '';
    for (let i = Math.floor(random() * 60); i > 0; i--) text += alphabet[Math.floor(random() * alphabet.length)];
    const whole = Buffer.from(text);
    const chunks: Buffer[] = [];
    for (let at = 0; at < whole.length; ) {
      const size = 1 + Math.floor(random() * 6);
      chunks.push(whole.subarray(at, at + size));
      at += size;
    }
    if (random() < 0.2) chunks.splice(Math.floor(random() * (chunks.length + 1)), 0, Buffer.alloc(0));
    const got = stuffed(chunks);
    if (!got.equals(stuffedByRule(chunks))) return t.fail(`chunks ${JSON.stringify(chunks.map(String))} gave ${JSON.stringify(String(got))}`);
  }
  t.pass();
});
