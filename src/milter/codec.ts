/**
 * The milter wire format (Sendmail's libmilter protocol, version 6, as Postfix and Sendmail speak
 * it): every packet is a 4-byte big-endian length, then that many bytes, the first of which is
 * the command (MTA → filter) or reply (filter → MTA) letter. Strings inside are NUL-terminated.
 *
 * This module only turns bytes into typed packets and back; what a packet means for a message is
 * session.ts's business. Bad bytes raise a MilterProtocolError saying what was wrong, and the
 * session closes that one connection.
 */
import { NimbusError } from '../errors.js';

/** Commands the MTA sends (SMFIC_*). */
export const COMMANDS = Object.freeze({
  ABORT: 'A',
  BODY: 'B',
  CONNECT: 'C',
  MACRO: 'D',
  BODYEOB: 'E',
  HELO: 'H',
  QUIT_NC: 'K',
  HEADER: 'L',
  MAIL: 'M',
  EOH: 'N',
  OPTNEG: 'O',
  QUIT: 'Q',
  RCPT: 'R',
  DATA: 'T',
  UNKNOWN: 'U',
} as const);

/** Replies and modifications the filter sends (SMFIR_*). */
export const REPLIES = Object.freeze({
  ADDRCPT: '+',
  DELRCPT: '-',
  ACCEPT: 'a',
  CONTINUE: 'c',
  DISCARD: 'd',
  ADDHEADER: 'h',
  INSHEADER: 'i',
  CHGHEADER: 'm',
  PROGRESS: 'p',
  QUARANTINE: 'q',
  REJECT: 'r',
  TEMPFAIL: 't',
  REPLYCODE: 'y',
  OPTNEG: 'O',
} as const);

/** SMFIF_*: the modifications a filter may make, asked for in option negotiation. */
export const ACTION_FLAGS = Object.freeze({
  ADDHDRS: 0x01,
  CHGBODY: 0x02,
  ADDRCPT: 0x04,
  DELRCPT: 0x08,
  CHGHDRS: 0x10,
  QUARANTINE: 0x20,
} as const);

/** SMFIP_*: steps the MTA may leave out (NO*) or send without waiting for a reply (NR_*). */
export const PROTOCOL_FLAGS = Object.freeze({
  NOCONNECT: 0x01,
  NOHELO: 0x02,
  NOMAIL: 0x04,
  NORCPT: 0x08,
  NOBODY: 0x10,
  NOHDRS: 0x20,
  NOEOH: 0x40,
  NR_HDR: 0x80,
  NOUNKNOWN: 0x100,
  NODATA: 0x200,
  NR_CONN: 0x1000,
  NR_HELO: 0x2000,
  NR_MAIL: 0x4000,
  NR_RCPT: 0x8000,
  NR_DATA: 0x10000,
  NR_UNKN: 0x20000,
  NR_EOH: 0x40000,
  NR_BODY: 0x80000,
  /** Header values as written after the colon, leading blanks included; the filter's values likewise. */
  HDR_LEADSPC: 0x100000,
} as const);

export const MILTER_VERSION = 6;

/** Nimbus changes headers, removes trap recipients and quarantines; never the body or the sender. */
export const WANTED_ACTIONS = ACTION_FLAGS.ADDHDRS | ACTION_FLAGS.CHGHDRS | ACTION_FLAGS.DELRCPT | ACTION_FLAGS.QUARANTINE;

/**
 * Unknown SMTP commands Nimbus has no use for, and every step before the end of the message sent
 * without waiting for a reply, save DATA: Nimbus decides once, at the end of the message, so a
 * reply per header or body chunk would only cost round trips. DATA is asked for and answered
 * because the MTA's milter socket has Nagle's algorithm on: without a reply, the DATA-stage macros
 * sat unacknowledged (Linux delays the ACK of a peer that sends no reply, 40 ms) and held the whole
 * header and body back until that ACK. Answering DATA took `npm run bench -- milter`'s added
 * latency at 20 sessions from ~50 ms to ~14 ms (BENCHMARKS, Milter). And header values with their
 * leading blanks (HDR_LEADSPC): without it the MTA drops the space after each colon, so the
 * header block can only be guessed back (`Name: value`), and a DKIM signature over a field
 * written otherwise (`Subject:x`, a tab) fails in the scan though it is good.
 */
export const WANTED_PROTOCOL =
  PROTOCOL_FLAGS.HDR_LEADSPC | PROTOCOL_FLAGS.NOUNKNOWN |
  PROTOCOL_FLAGS.NR_CONN | PROTOCOL_FLAGS.NR_HELO | PROTOCOL_FLAGS.NR_MAIL | PROTOCOL_FLAGS.NR_RCPT |
  PROTOCOL_FLAGS.NR_HDR | PROTOCOL_FLAGS.NR_EOH | PROTOCOL_FLAGS.NR_BODY | PROTOCOL_FLAGS.NR_UNKN;

/**
 * The largest packet accepted. An MTA sends body chunks of at most 64 KB (libmilter's
 * MILTER_CHUNK_SIZE; Postfix the same), and headers and macros far smaller; 1 MB leaves room for
 * a huge header field and refuses a length that is garbage.
 */
export const MAX_PACKET = 1024 * 1024;

export class MilterProtocolError extends NimbusError {
  constructor(message: string) {
    super('MILTER_PROTOCOL', message);
  }
}

export interface Packet {
  readonly command: string;
  readonly data: Buffer;
}

/**
 * Cuts a byte stream into packets. `push` returns the complete packets so far; bytes of an
 * unfinished packet wait for the next push. A length of 0 or over `maxPacket` is refused at once,
 * before its bytes are waited for.
 */
export class PacketReader {
  #pending: Buffer = Buffer.alloc(0);
  readonly #maxPacket: number;

  constructor(maxPacket = MAX_PACKET) {
    this.#maxPacket = maxPacket;
  }

  /** Bytes of an unfinished packet (at the end of the stream: a truncated packet). */
  get buffered(): number {
    return this.#pending.length;
  }

  push(chunk: Buffer): Packet[] {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const packets: Packet[] = [];
    let offset = 0;
    while (this.#pending.length - offset >= 4) {
      const length = this.#pending.readUInt32BE(offset);
      if (length === 0) throw new MilterProtocolError('packet of length 0: no command byte');
      if (length > this.#maxPacket) throw new MilterProtocolError(`packet of ${length} bytes is over the ${this.#maxPacket}-byte limit (garbage or a hostile peer)`);
      if (this.#pending.length - offset - 4 < length) break;
      const start = offset + 4;
      packets.push({ command: String.fromCharCode(this.#pending[start]!), data: this.#pending.subarray(start + 1, start + length) });
      offset = start + length;
    }
    this.#pending = offset === this.#pending.length ? Buffer.alloc(0) : this.#pending.subarray(offset);
    return packets;
  }
}

/** One packet on the wire: length, reply letter, data. */
export function encodePacket(reply: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(data.length + 1, 0);
  header.write(reply, 4, 'latin1');
  return Buffer.concat([header, data]);
}

/** NUL-terminated strings, in order (header names and values, addresses, reply texts). */
export function strings(...values: readonly string[]): Buffer {
  return Buffer.concat(values.map((value) => Buffer.from(`${value}\0`, 'utf8')));
}

/** The NUL-terminated strings of `data`; a trailing string without its NUL is an error. */
export function splitStrings(data: Buffer, what: string): string[] {
  if (data.length === 0) return [];
  if (data[data.length - 1] !== 0) throw new MilterProtocolError(`${what}: the last string is not NUL-terminated`);
  return data.subarray(0, data.length - 1).toString('utf8').split('\0');
}

export interface Negotiation {
  readonly version: number;
  readonly actions: number;
  readonly protocol: number;
}

export function decodeOptionNegotiation(data: Buffer): Negotiation {
  if (data.length < 12) throw new MilterProtocolError(`option negotiation of ${data.length} bytes: expected at least 12 (version, actions, protocol)`);
  return { version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
}

/**
 * Nimbus's answer to the MTA's offer: version 6 (or the MTA's, if older but at least 2), the
 * actions Nimbus needs, and the protocol steps it can do without, each only as far as the MTA
 * offers it. An MTA that cannot let Nimbus change headers is refused: Nimbus could not do its job.
 */
export function answerOptionNegotiation(offer: Negotiation): Negotiation {
  if (offer.version < 2) throw new MilterProtocolError(`milter protocol version ${offer.version} is too old: version 2 or later needed (6 preferred)`);
  const needed = ACTION_FLAGS.ADDHDRS | ACTION_FLAGS.CHGHDRS;
  if ((offer.actions & needed) !== needed) throw new MilterProtocolError(`the MTA does not allow adding and changing headers (actions 0x${offer.actions.toString(16)})`);
  return { version: Math.min(offer.version, MILTER_VERSION), actions: offer.actions & WANTED_ACTIONS, protocol: offer.protocol & WANTED_PROTOCOL };
}

export function encodeOptionNegotiation(answer: Negotiation): Buffer {
  const data = Buffer.alloc(12);
  data.writeUInt32BE(answer.version, 0);
  data.writeUInt32BE(answer.actions, 4);
  data.writeUInt32BE(answer.protocol, 8);
  return encodePacket(REPLIES.OPTNEG, data);
}

/** SMFIC_MACRO: the command they belong to, and `name → value` (names without braces: `{i}` is `i`). */
export function decodeMacros(data: Buffer): { command: string; macros: Map<string, string> } {
  if (data.length < 1) throw new MilterProtocolError('macro packet without the command it belongs to');
  const values = splitStrings(data.subarray(1), 'macro packet');
  if (values.length % 2 !== 0) throw new MilterProtocolError(`macro packet with ${values.length} strings: expected name and value pairs`);
  const macros = new Map<string, string>();
  for (let i = 0; i < values.length; i += 2) macros.set(values[i]!.replace(/^\{(.*)\}$/, '$1'), values[i + 1]!);
  return { command: String.fromCharCode(data[0]!), macros };
}

export interface ConnectInfo {
  readonly hostname: string;
  /** The client's address; null for a local (unix socket, `sendmail` command) or unknown client. */
  readonly address: string | null;
  readonly port: number | null;
}

/** SMFIC_CONNECT: host name, family (`4`, `6`, `L` local, `U` unknown), port, address. */
export function decodeConnect(data: Buffer): ConnectInfo {
  const nul = data.indexOf(0);
  if (nul < 0) throw new MilterProtocolError('connect packet: the host name is not NUL-terminated');
  const hostname = data.subarray(0, nul).toString('utf8');
  if (data.length === nul + 1) return { hostname, address: null, port: null };
  const family = String.fromCharCode(data[nul + 1]!);
  if (family === 'U') return { hostname, address: null, port: null };
  if (data.length < nul + 4) throw new MilterProtocolError('connect packet: truncated after the address family');
  const port = data.readUInt16BE(nul + 2);
  const [address = ''] = splitStrings(data.subarray(nul + 4), 'connect packet');
  if (family === 'L') return { hostname, address: null, port: null };
  if (family !== '4' && family !== '6') throw new MilterProtocolError(`connect packet: unknown address family ${JSON.stringify(family)}`);
  // Sendmail writes IPv6 addresses as `IPv6:2001:db8::1`.
  return { hostname, address: address.replace(/^IPv6:/i, ''), port };
}

/**
 * Whether header values come (and must be sent) with their leading blanks: with HDR_LEADSPC
 * granted, the MTA puts nothing between the colon and a value the filter sends (Postfix's
 * milter8.c adds its one space only without the flag), so a value sent must start with its own
 * space; without it the MTA adds one.
 */
export function leadingSpaceGranted(negotiated: Negotiation): boolean {
  return (negotiated.protocol & PROTOCOL_FLAGS.HDR_LEADSPC) !== 0;
}

/** SMFIC_HEADER: name and value (the value's folds as `\n` followed by blanks, as the MTA sends them). */
export function decodeHeader(data: Buffer): { name: string; value: string } {
  const values = splitStrings(data, 'header packet');
  if (values.length !== 2) throw new MilterProtocolError(`header packet with ${values.length} strings: expected a name and a value`);
  return { name: values[0]!, value: values[1]! };
}

/** SMFIC_MAIL / SMFIC_RCPT: the address (angle brackets removed) and its ESMTP arguments. */
export function decodeAddress(data: Buffer, what: string): { address: string; raw: string } {
  const [raw = ''] = splitStrings(data, what);
  const address = raw.trim().replace(/^<(.*)>$/, '$1');
  return { address, raw };
}

/** `index` and `name: value` replies (SMFIR_INSHEADER, SMFIR_CHGHEADER): an empty value deletes. */
export function encodeIndexedHeader(reply: typeof REPLIES.INSHEADER | typeof REPLIES.CHGHEADER, index: number, name: string, value: string): Buffer {
  const position = Buffer.alloc(4);
  position.writeUInt32BE(index, 0);
  return encodePacket(reply, Buffer.concat([position, strings(name, value)]));
}
