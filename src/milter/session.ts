/**
 * One milter connection from the MTA: option negotiation, then for each SMTP session CONNECT,
 * HELO, and for each message MAIL, RCPT…, HEADER…, EOH, BODY…, end of message; ABORT drops the
 * message (another may follow), QUIT ends the connection, QUIT_NC keeps it for another SMTP
 * session. Packets are handled one at a time in arrival order. A protocol error, or a connection
 * that stalls past NIMBUS_SOCKET_TIMEOUT_MS, closes this connection only, with a log line saying
 * what was wrong; the MTA then applies its own milter_default_action.
 */
import type { Socket } from 'node:net';
import { inBlockList, type Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { COMMANDS, MilterProtocolError, PROTOCOL_FLAGS, PacketReader, REPLIES, answerOptionNegotiation, decodeAddress, decodeConnect, decodeHeader,
  decodeMacros, decodeOptionNegotiation, encodeOptionNegotiation, encodePacket, leadingSpaceGranted, type Negotiation, type Packet } from './codec.js';
import { finishMessage, type MilterContext, type MilterClient } from './finish.js';
import { MilterMessage } from './message.js';

/** Packets queued before the socket is paused: the MTA streams body chunks without waiting. */
const MAX_QUEUED_PACKETS = 64;

/** Stages whose macros last as long as the SMTP session, and those of one message. */
const CONNECTION_STAGES: readonly string[] = [COMMANDS.CONNECT, COMMANDS.HELO];
const MESSAGE_STAGES: readonly string[] = [COMMANDS.MAIL, COMMANDS.RCPT, COMMANDS.DATA, COMMANDS.HEADER, COMMANDS.EOH, COMMANDS.BODY, COMMANDS.BODYEOB];
/** Every stage, earliest first: a later stage's macro wins over an earlier one's. */
const ALL_STAGES: readonly string[] = [...CONNECTION_STAGES, ...MESSAGE_STAGES];

/** The reply-less flag of each step: without it granted, the MTA waits for SMFIR_CONTINUE. */
const NO_REPLY: Readonly<Record<string, number>> = Object.freeze({
  [COMMANDS.CONNECT]: PROTOCOL_FLAGS.NR_CONN,
  [COMMANDS.HELO]: PROTOCOL_FLAGS.NR_HELO,
  [COMMANDS.MAIL]: PROTOCOL_FLAGS.NR_MAIL,
  [COMMANDS.RCPT]: PROTOCOL_FLAGS.NR_RCPT,
  [COMMANDS.DATA]: PROTOCOL_FLAGS.NR_DATA,
  [COMMANDS.HEADER]: PROTOCOL_FLAGS.NR_HDR,
  [COMMANDS.EOH]: PROTOCOL_FLAGS.NR_EOH,
  [COMMANDS.BODY]: PROTOCOL_FLAGS.NR_BODY,
  [COMMANDS.UNKNOWN]: PROTOCOL_FLAGS.NR_UNKN,
});

export class MilterSession {
  readonly #socket: Socket;
  readonly #context: MilterContext;
  readonly #log: Logger;
  readonly #reader = new PacketReader();
  #negotiated: Negotiation | null = null;
  /** Macros by the command they came with: a new MAIL's replace the last one's, ABORT drops the message's. */
  #macros = new Map<string, Map<string, string>>();
  #client: MilterClient = { ip: null, name: null, helo: 'unknown', trusted: false };
  #message: MilterMessage | null = null;
  /** Packets received and not yet handled, in arrival order. */
  #pending: Packet[] = [];
  /** Whether #handlePending is running (it may finish synchronously). */
  #handling = false;
  /** The last #handlePending's promise: what a closed connection waits for before dropping its message. */
  #work: Promise<void> = Promise.resolve();
  #closed = false;
  /** Between the end of a message and its answer (the scan). */
  #finishing = false;
  #idleWaiters: (() => void)[] = [];

  constructor(socket: Socket, context: MilterContext, log: Logger) {
    this.#socket = socket;
    this.#context = context;
    this.#log = log;
    // Replies are small and the MTA waits for each: no Nagle delay on them.
    socket.setNoDelay(true);
    socket.setTimeout(context.config().socketTimeoutMs, () => this.#fail(new MilterProtocolError(`no packet for ${context.config().socketTimeoutMs} ms (NIMBUS_SOCKET_TIMEOUT_MS): connection stalled`)));
    // Bound methods, not arrows: an arrow made per connection is a new closure per message, and
    // V8 drops a closure's optimised code with the closure at each full GC, so the handlers were
    // compiled again and again in steady state (--trace-opt); a method's code lives as long as the class.
    socket.on('data', this.#receive.bind(this));
    socket.on('error', (error) => this.#log.debug({ event: 'milter.connection_error', err: error }, 'milter connection error'));
    socket.on('close', this.#onClose.bind(this));
  }

  /** Whether a message is between MAIL and its end (a graceful stop waits for it). */
  get busy(): boolean {
    return (this.#message !== null || this.#finishing) && !this.#closed;
  }

  /** Resolves once no message is in progress. */
  idle(): Promise<void> {
    return this.busy ? new Promise((resolve) => this.#idleWaiters.push(resolve)) : Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    this.#socket.destroy();
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    let packets: Packet[];
    try {
      packets = this.#reader.push(chunk);
    } catch (error) {
      this.#fail(error);
      return;
    }
    for (const packet of packets) this.#pending.push(packet);
    if (this.#pending.length > MAX_QUEUED_PACKETS) this.#socket.pause();
    if (!this.#handling) this.#work = this.#handlePending();
  }

  /**
   * Handles the pending packets one at a time, in order; only the steps that write to the spool
   * or scan are awaited (a promise chain per packet, ~30 per message, was measurable CPU).
   * The first error closes the connection and nothing after it is handled.
   */
  async #handlePending(): Promise<void> {
    this.#handling = true;
    try {
      for (let packet = this.#pending.shift(); packet !== undefined && !this.#closed; packet = this.#pending.shift()) {
        const running = this.#handle(packet);
        if (running !== undefined) await running;
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#handling = false;
      if (!this.#closed) this.#socket.resume();
    }
  }

  /** Returns a promise only for a step that has to be waited for. */
  #handle(packet: Packet): Promise<void> | undefined {
    const { command, data } = packet;
    if (command !== COMMANDS.OPTNEG && command !== COMMANDS.QUIT && this.#negotiated === null) {
      throw new MilterProtocolError(`command ${JSON.stringify(command)} before option negotiation`);
    }
    switch (command) {
      case COMMANDS.OPTNEG: {
        if (this.#message) throw new MilterProtocolError('option negotiation in the middle of a message');
        const answer = answerOptionNegotiation(decodeOptionNegotiation(data));
        this.#negotiated = answer;
        this.#send(encodeOptionNegotiation(answer));
        return;
      }
      case COMMANDS.MACRO: {
        const { command: stage, macros } = decodeMacros(data);
        this.#macros.set(stage, macros);
        return;
      }
      case COMMANDS.CONNECT: {
        this.#dropMessage();
        const info = decodeConnect(data);
        const ip = info.address ?? this.#macro('client_addr');
        const name = this.#macro('client_name') ?? info.hostname;
        this.#client = {
          ip,
          name: name === '' || name === 'unknown' || name.startsWith('[') ? null : name,
          helo: 'unknown',
          trusted: ip !== null && inBlockList(this.#context.config().trustedBlockList, ip),
        };
        break;
      }
      case COMMANDS.HELO:
        // Written out, not `{ ...this.#client, helo }`: node 20's V8 builds a spread several times slower.
        this.#client = { ip: this.#client.ip, name: this.#client.name, helo: decodeAddress(data, 'HELO packet').raw.trim() || 'unknown', trusted: this.#client.trusted };
        break;
      case COMMANDS.MAIL:
        this.#dropMessage();
        this.#message = new MilterMessage(this.#context.config(), decodeAddress(data, 'MAIL packet').address, leadingSpaceGranted(this.#negotiated!));
        break;
      case COMMANDS.RCPT: {
        const { address, raw } = decodeAddress(data, 'RCPT packet');
        this.#current(command).recipients.push({ raw, address });
        break;
      }
      case COMMANDS.HEADER:
        this.#current(command).addHeader(decodeHeader(data));
        break;
      case COMMANDS.EOH:
        return this.#continueAfter(this.#current(command).endHeaders(), command);
      case COMMANDS.BODY:
        return this.#continueAfter(this.#current(command).addBody(data), command);
      case COMMANDS.BODYEOB: {
        const message = this.#current(command);
        this.#message = null;
        this.#finishing = true;
        return this.#finish(message, data);
      }
      case COMMANDS.ABORT:
        this.#dropMessage();
        return;
      case COMMANDS.QUIT:
        this.#closed = true;
        this.#socket.end();
        return;
      case COMMANDS.QUIT_NC:
        // Another SMTP session follows on this connection: nothing of the last one carries over.
        this.#dropMessage();
        this.#macros = new Map();
        this.#client = { ip: null, name: null, helo: 'unknown', trusted: false };
        return;
      case COMMANDS.DATA:
      case COMMANDS.UNKNOWN:
        break;
      default:
        throw new MilterProtocolError(`unknown command ${JSON.stringify(command)} (0x${command.charCodeAt(0).toString(16)})`);
    }
    this.#continueUnlessReplyless(command);
  }

  async #finish(message: MilterMessage, lastChunk: Buffer): Promise<void> {
    try {
      if (lastChunk.length > 0) await message.addBody(lastChunk);
      await message.finish();
      const answer = await finishMessage(this.#context, message, this.#client, this.#allMacros(), this.#negotiated!.actions, (packet) => this.#send(packet), this.#log);
      // One write: a modification packet alone would wait for Nagle's ACK before the final reply.
      this.#send(Buffer.concat(answer));
    } finally {
      message.dispose();
      this.#finishing = false;
      this.#dropMessageMacros();
      this.#notifyIdle();
    }
  }

  /** A method rather than a `.then` arrow per packet: see the constructor about closures. */
  async #continueAfter(step: Promise<void>, command: string): Promise<void> {
    await step;
    this.#continueUnlessReplyless(command);
  }

  #continueUnlessReplyless(command: string): void {
    const flag = NO_REPLY[command] ?? 0;
    if ((this.#negotiated!.protocol & flag) === 0) this.#send(encodePacket(REPLIES.CONTINUE));
  }

  #current(command: string): MilterMessage {
    if (!this.#message) throw new MilterProtocolError(`command ${JSON.stringify(command)} outside a message (no MAIL before it)`);
    return this.#message;
  }

  /** Every macro known now, a later stage's value winning over an earlier one's. */
  #allMacros(): Map<string, string> {
    const all = new Map<string, string>();
    for (const stage of ALL_STAGES) for (const [name, value] of this.#macros.get(stage) ?? []) all.set(name, value);
    return all;
  }

  #dropMessageMacros(): void {
    for (const stage of MESSAGE_STAGES) this.#macros.delete(stage);
  }

  /** One macro, as #allMacros would give it, without building that map (CONNECT asks for two). */
  #macro(name: string): string | null {
    for (let i = ALL_STAGES.length - 1; i >= 0; i--) {
      const value = this.#macros.get(ALL_STAGES[i]!)?.get(name);
      if (value !== undefined) return value === '' ? null : value;
    }
    return null;
  }

  #send(packet: Buffer): void {
    if (!this.#closed && this.#socket.writable) this.#socket.write(packet);
  }

  #dropMessage(): void {
    if (!this.#message) return;
    this.#message.dispose();
    this.#message = null;
    this.#dropMessageMacros();
    this.#notifyIdle();
  }

  #notifyIdle(): void {
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    if (error instanceof MilterProtocolError) {
      this.#log.warn({ event: 'milter.protocol_error', code: error.code, problem: error.message }, `milter connection closed: ${error.message}`);
    } else {
      this.#log.error({ event: 'milter.error', err: error }, 'unexpected error, milter connection closed');
    }
    this.#socket.destroy();
    this.#onClose();
  }

  #onClose(): void {
    if (!this.#closed && this.#reader.buffered > 0) {
      this.#log.warn({ event: 'milter.protocol_error', code: 'MILTER_PROTOCOL', problem: `connection ended inside a packet (${this.#reader.buffered} bytes of it received)` }, 'milter connection ended with a truncated packet');
    }
    this.#closed = true;
    // Work still running finishes (its replies go nowhere); its message is disposed there.
    void this.#dropMessageAfterWork();
  }

  async #dropMessageAfterWork(): Promise<void> {
    await this.#work;
    this.#dropMessage();
  }
}
