/**
 * The milter wire format on bytes: packets cut from a stream however it is split, hostile lengths
 * refused before their bytes are awaited, option negotiation asking only for what Nimbus needs,
 * macros, connect and header packets as Postfix and Sendmail send them.
 */
import test from 'ava';
import {
  ACTION_FLAGS, MAX_PACKET, MilterProtocolError, PROTOCOL_FLAGS, PacketReader, answerOptionNegotiation, decodeAddress, decodeConnect, decodeHeader,
  decodeMacros, decodeOptionNegotiation, encodeIndexedHeader, encodeOptionNegotiation, encodePacket, leadingSpaceGranted, strings,
} from '../src/milter/codec.js';

function packet(command: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return encodePacket(command, data);
}

test('packets split at every byte boundary come out whole and in order', (t) => {
  const stream = Buffer.concat([packet('H', strings('client.test')), packet('T'), packet('B', Buffer.from('body\r\n'))]);
  for (let cut = 1; cut < stream.length; cut++) {
    const reader = new PacketReader();
    const packets = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))];
    t.deepEqual(packets.map((p) => [p.command, p.data.toString('latin1')]), [['H', 'client.test\0'], ['T', ''], ['B', 'body\r\n']]);
    t.is(reader.buffered, 0);
  }
});

test('a packet longer than the cap is refused from its length alone, naming the length and the cap', (t) => {
  const reader = new PacketReader();
  const header = Buffer.alloc(4);
  header.writeUInt32BE(MAX_PACKET + 1, 0);
  const error = t.throws(() => reader.push(header), { instanceOf: MilterProtocolError });
  t.regex(error!.message, new RegExp(`${MAX_PACKET + 1} bytes is over the ${MAX_PACKET}-byte limit`));
});

test('garbage bytes (an HTTP request) are refused as an oversized packet, and a zero length as having no command', (t) => {
  t.throws(() => new PacketReader().push(Buffer.from('GET / HTTP/1.1\r\n')), { message: /over the .*-byte limit/ });
  t.throws(() => new PacketReader().push(Buffer.from([0, 0, 0, 0])), { message: /length 0/ });
});

test('a truncated packet stays buffered, so the end of the stream can say how many bytes were left', (t) => {
  const reader = new PacketReader();
  const whole = packet('L', strings('Subject', 'hello'));
  t.deepEqual(reader.push(whole.subarray(0, whole.length - 3)), []);
  t.is(reader.buffered, whole.length - 3);
});

test('option negotiation answers version 6 with only the actions and steps Nimbus needs, within what the MTA offers, and a reply to DATA', (t) => {
  // What Postfix 3.7 offers with milter_protocol = 6: every action, every protocol flag.
  const offer = decodeOptionNegotiation(Buffer.from('00000006000001ff001fffff', 'hex'));
  t.deepEqual(offer, { version: 6, actions: 0x1ff, protocol: 0x1fffff });
  const answer = answerOptionNegotiation(offer);
  t.is(answer.version, 6);
  t.is(answer.actions, ACTION_FLAGS.ADDHDRS | ACTION_FLAGS.CHGHDRS | ACTION_FLAGS.DELRCPT | ACTION_FLAGS.QUARANTINE);
  t.truthy(answer.protocol & PROTOCOL_FLAGS.NR_HDR, 'no reply for each header');
  t.truthy(answer.protocol & PROTOCOL_FLAGS.NR_BODY, 'no reply for each body chunk');
  t.falsy(answer.protocol & PROTOCOL_FLAGS.NOHDRS, 'headers are needed');
  t.falsy(answer.protocol & PROTOCOL_FLAGS.NOBODY, 'the body is needed');
  t.falsy(answer.protocol & PROTOCOL_FLAGS.NORCPT, 'recipients are needed (spam traps)');
  // A reply to DATA acknowledges the envelope and DATA-stage macros at once; without one, the MTA's
  // Nagle held the header and body back behind them until the delayed ACK (~40 ms per message).
  t.falsy(answer.protocol & PROTOCOL_FLAGS.NODATA, 'DATA is asked for');
  t.falsy(answer.protocol & PROTOCOL_FLAGS.NR_DATA, 'DATA is answered');
  // An MTA that offers no NR_* flags gets none asked.
  const old = answerOptionNegotiation({ version: 2, actions: 0x3f, protocol: 0x7f });
  t.is(old.version, 2);
  t.is(old.protocol & PROTOCOL_FLAGS.NR_HDR, 0);
  t.is(encodeOptionNegotiation(answer).toString('hex'), `0000000d4f00000006${answer.actions.toString(16).padStart(8, '0')}${answer.protocol.toString(16).padStart(8, '0')}`);
});

test('option negotiation refuses a short packet, version 1, and an MTA that forbids header changes', (t) => {
  t.throws(() => decodeOptionNegotiation(Buffer.alloc(8)), { message: /expected at least 12/ });
  t.throws(() => answerOptionNegotiation({ version: 1, actions: 0x3f, protocol: 0 }), { message: /version 1 is too old/ });
  t.throws(() => answerOptionNegotiation({ version: 6, actions: ACTION_FLAGS.ADDHDRS, protocol: 0 }), { message: /adding and changing headers/ });
});

test('macros are read as name and value pairs for their command, braces removed', (t) => {
  const { command, macros } = decodeMacros(Buffer.concat([Buffer.from('C'), strings('j', 'mx.example.org', '{daemon_name}', 'smtpd', '{client_addr}', '192.0.2.7')]));
  t.is(command, 'C');
  t.deepEqual([...macros], [['j', 'mx.example.org'], ['daemon_name', 'smtpd'], ['client_addr', '192.0.2.7']]);
  t.throws(() => decodeMacros(Buffer.concat([Buffer.from('M'), strings('i')])), { message: /name and value pairs/ });
  t.throws(() => decodeMacros(Buffer.from('Mi\0ABC')), { message: /not NUL-terminated/ });
});

test('connect packets give the address for IPv4 and IPv6 (Sendmail\'s IPv6: prefix removed) and none for a local client', (t) => {
  const connect = (host: string, family: string, port: number, address: string): Buffer => {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(port, 0);
    return Buffer.concat([strings(host), Buffer.from(family), p, strings(address)]);
  };
  t.deepEqual(decodeConnect(connect('client.test', '4', 4711, '192.0.2.7')), { hostname: 'client.test', address: '192.0.2.7', port: 4711 });
  t.deepEqual(decodeConnect(connect('[2001:db8::7]', '6', 25, 'IPv6:2001:db8::7')), { hostname: '[2001:db8::7]', address: '2001:db8::7', port: 25 });
  t.deepEqual(decodeConnect(connect('localhost', 'L', 0, '/var/run/sock')), { hostname: 'localhost', address: null, port: null });
  t.deepEqual(decodeConnect(Buffer.concat([strings('unknown'), Buffer.from('U')])), { hostname: 'unknown', address: null, port: null });
  t.throws(() => decodeConnect(connect('x', 'Z', 1, 'y')), { message: /unknown address family "Z"/ });
  t.throws(() => decodeConnect(Buffer.from('no-nul')), { message: /host name is not NUL-terminated/ });
});

test('header, MAIL and RCPT packets decode, and indexed header replies encode index, name and value', (t) => {
  t.deepEqual(decodeHeader(strings('Subject', 'hello\n\tworld')), { name: 'Subject', value: 'hello\n\tworld' });
  t.throws(() => decodeHeader(strings('Subject')), { message: /expected a name and a value/ });
  t.deepEqual(decodeAddress(strings('<a@example.org>', 'SIZE=100'), 'mail'), { address: 'a@example.org', raw: '<a@example.org>' });
  t.deepEqual(decodeAddress(strings('<>'), 'mail'), { address: '', raw: '<>' });
  t.is(encodeIndexedHeader('m', 2, 'X-Spam-Flag', '').toString('hex'), `000000126d00000002${Buffer.from('X-Spam-Flag\0\0').toString('hex')}`);
});

test('option negotiation takes SMFIP_HDR_LEADSPC when the MTA offers it (Postfix with milter_protocol = 6), so header values arrive exactly as written; an MTA without it gets the rebuilt fallback', (t) => {
  const postfix = answerOptionNegotiation(decodeOptionNegotiation(Buffer.from('00000006000001ff001fffff', 'hex')));
  t.is(postfix.protocol & PROTOCOL_FLAGS.HDR_LEADSPC, 0x100000);
  t.true(leadingSpaceGranted(postfix));
  // Protocol 2 (or an MTA that does not offer it): no leading blanks either way.
  const old = answerOptionNegotiation({ version: 2, actions: 0x3f, protocol: 0x7f });
  t.is(old.protocol & PROTOCOL_FLAGS.HDR_LEADSPC, 0);
  t.false(leadingSpaceGranted(old));
});
