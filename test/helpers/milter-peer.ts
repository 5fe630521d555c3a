/**
 * A raw milter peer for tests, speaking as an MTA: packets out, packets in (what no real MTA would
 * send, too, and the exact header values an MTA sends under each negotiation).
 */
import { connect, type Socket } from 'node:net';
import { COMMANDS, PacketReader, encodePacket, strings, type Packet } from '../../src/milter/codec.js';
import { waitFor } from './wait.js';

/** What Postfix 3.7 offers with milter_protocol = 6. */
export const POSTFIX_OFFER = { version: 6, actions: 0x1ff, protocol: 0x1fffff };

/** A raw milter peer: packets out, packets in. */
export class Peer {
  readonly socket: Socket;
  readonly #reader = new PacketReader();
  readonly #packets: Packet[] = [];
  closed = false;

  constructor(target: number | string) {
    this.socket = typeof target === 'number' ? connect({ host: '127.0.0.1', port: target }) : connect({ path: target });
    this.socket.on('data', (chunk: Buffer) => this.#packets.push(...this.#reader.push(chunk)));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  send(command: string, data: Buffer = Buffer.alloc(0)): void {
    this.socket.write(encodePacket(command, data));
  }

  async next(): Promise<Packet> {
    return waitFor('a packet from the milter', () => this.#packets.shift(), 15_000);
  }

  /** Packets up to and including the first final reply of a message. */
  async answer(): Promise<Packet[]> {
    const packets: Packet[] = [];
    for (;;) {
      const packet = await this.next();
      packets.push(packet);
      if ('acdrty'.includes(packet.command)) return packets;
    }
  }

  async negotiate(offer = POSTFIX_OFFER): Promise<Packet> {
    const data = Buffer.alloc(12);
    data.writeUInt32BE(offer.version, 0);
    data.writeUInt32BE(offer.actions, 4);
    data.writeUInt32BE(offer.protocol, 8);
    this.send(COMMANDS.OPTNEG, data);
    return this.next();
  }

  /** CONNECT … end of message of one message, without waiting (the NR_* steps get no reply). */
  sendMessage(body: string, rcpts = ['<alice@example.com>'], headers: [string, string][] = [['Subject', 'hello']]): void {
    const port = Buffer.alloc(2);
    this.send(COMMANDS.CONNECT, Buffer.concat([strings('client.test'), Buffer.from('4'), port, strings('192.0.2.7')]));
    this.send(COMMANDS.HELO, strings('client.test'));
    this.send(COMMANDS.MAIL, strings('<sender@example.org>'));
    for (const rcpt of rcpts) this.send(COMMANDS.RCPT, strings(rcpt));
    for (const [name, value] of headers) this.send(COMMANDS.HEADER, strings(name, value));
    this.send(COMMANDS.EOH);
    this.send(COMMANDS.BODY, Buffer.from(body));
    this.send(COMMANDS.BODYEOB);
  }
}

/**
 * A message's header fields as an MTA sends them in SMFIC_HEADER packets: folds as bare `\n`, and
 * the value as written after the colon with HDR_LEADSPC, else with one leading space dropped (as
 * Postfix and Sendmail drop it); and its body.
 */
export function milterHeaders(message: Buffer, leadingSpace: boolean): { headers: [string, string][]; body: string } {
  const text = message.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const fields = text.slice(0, end).split(/\r\n(?![ \t])/);
  const headers = fields.map((field): [string, string] => {
    const colon = field.indexOf(':');
    const value = field.slice(colon + 1).replace(/\r\n/g, '\n');
    return [field.slice(0, colon), leadingSpace ? value : value.replace(/^ /, '')];
  });
  return { headers, body: text.slice(end + 4) };
}
