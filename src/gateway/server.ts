/**
 * `startGateway`: the SMTP listener (smtp-server) and, per message, the before-queue path:
 * relay policy at RCPT, next hop in lockstep (next-hop.ts), spool, inspection, header edits,
 * relay or Maildir, observer, then the sender's final reply. No process-wide state: several
 * gateways may run in one process (tests) or one per worker process.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { reverse } from 'node:dns';
import type { BlockList, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { inBlockList, type Config } from '../config.js';
import type { Logger } from '../log.js';
import { formatHeaderField } from '../scan/headers.js';
import { Scanner } from '../scan/scanner.js';
import { isSpamTrap } from '../scan/traps.js';
import type { MessageScanner, ScanRequest, ScanResult } from '../scan/types.js';
import { undecided } from '../scan/verdict.js';
import { stripVerdictFields, tagSubject } from './header-block.js';
import type { GatewayHooks } from './hooks.js';
import { Maildir } from './maildir.js';
import { NextHopPool } from './hop-pool.js';
import { NextHopError, NextHopSession, type SmtpResponse } from './next-hop.js';
import { formatReceived } from './received.js';
import { checkRecipient } from './recipient-policy.js';
import { ENHANCED_CODE_PREFIX, SMTP_REPLIES, SmtpReplyError, formatReplyText, mirroredReplyError } from './smtp-replies.js';
import { MessageSpool } from './spool.js';

export interface RunningGateway {
  readonly address: { readonly host: string; readonly port: number };
  /** Stops accepting, lets every transaction in flight finish, then closes idle sessions. */
  close(): Promise<void>;
  /** Applies what can change without a restart; logs what cannot. */
  reload(config: Config): void;
}

export async function startGateway(config: Config, log: Logger, hooks: GatewayHooks = {}): Promise<RunningGateway> {
  const gateway = new Gateway(config, log, hooks);
  await gateway.listen();
  return gateway;
}

/** What one transaction (MAIL … final reply) has gathered. */
interface Transaction {
  readonly queueId: string;
  readonly started: number;
  readonly mailFrom: string;
  readonly relayRcpts: string[];
  readonly trapRcpts: string[];
}

/** Per SMTP connection: its logger, its next-hop session, its current transaction. */
interface ConnectionState {
  readonly log: Logger;
  hop: NextHopSession | null;
  transaction: Transaction | null;
  /** Recipients refused to an untrusted client since the session began or last had a message accepted. */
  refusedRecipients: number;
  /** The next error reply is the session's last: 421 follows it and the connection closes. */
  hangUpAfterReply: boolean;
}

/**
 * Disabled for untrusted sessions, so smtp-server neither advertises them nor runs them, but it
 * would answer them as unknown (500 5.5.2): they are known, and refused (550 5.7.0).
 */
const PROXY_COMMANDS: ReadonlySet<string> = new Set(['XCLIENT', 'XFORWARD']);

type Part = Buffer | (() => Readable);

interface PatchableConnection {
  session: SMTPServerSession;
  remoteAddress: string;
  _socket: Socket;
  _ready: boolean;
  _closing: boolean;
  connectionReady(next?: () => void): void;
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
}

/** The parts of SMTPServer that the trusted-client greeting (#greetTrustedAtOnce) reaches into. */
interface PatchableServer {
  connections: Set<PatchableConnection>;
  connect(socket: Socket, options: unknown): void;
}

class Gateway implements RunningGateway {
  #config: Config;
  #log: Logger;
  #hooks: GatewayHooks;
  #scanner: MessageScanner;
  #server: SMTPServer;
  #options: SMTPServerOptions;
  #connections = new Map<string, ConnectionState>();
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];
  #closing = false;
  #maildir: Maildir | null = null;
  #pool = new NextHopPool();
  #address = { host: '', port: 0 };

  constructor(config: Config, log: Logger, hooks: GatewayHooks) {
    this.#config = config;
    this.#log = log;
    this.#hooks = hooks;
    this.#scanner = hooks.scanner ?? this.#policyOnlyScanner(config);
    this.#options = {
      name: config.hostname,
      banner: 'Nimbus ESMTP',
      logger: false,
      size: config.maxMessageSize,
      // smtp-server answers 552 5.3.4 itself after reading the whole oversized stream.
      rejectOversized: true,
      maxClients: config.maxConnections,
      socketTimeout: config.socketTimeoutMs,
      closeTimeout: config.nextHopTimeoutMs * 2 + 10_000,
      hideENHANCEDSTATUSCODES: false,
      hideSTARTTLS: config.tls === null,
      hideDSN: true,
      hideREQUIRETLS: true,
      authOptional: true,
      disabledCommands: ['AUTH'],
      // Enabled for everyone here, then disabled per session for untrusted clients (onConnect):
      // smtp-server's own lists match exact addresses only, not NIMBUS_TRUSTED_NETWORKS's CIDRs.
      useXClient: true,
      useXForward: true,
      // No reverse DNS for a trusted client: it is our own MTA (Postfix passes the real client's
      // name with XFORWARD), and its lookup would hold the greeting of every connection.
      resolver: { reverse: (ip, callback) => (this.#trusted(ip) ? callback(null, []) : reverse(ip, callback)) },
      ...(config.tls ? { key: readFileSync(config.tls.key), cert: readFileSync(config.tls.cert) } : {}),
      onConnect: (session, callback) => this.#onConnect(session, callback),
      onMailFrom: (address, session, callback) => this.#callback(session, callback, () => this.#onMailFrom(address, session)),
      onRcptTo: (address, session, callback) => this.#callback(session, callback, () => this.#onRcptTo(address, session)),
      onData: (stream, session, callback) => {
        // The transaction counts as in flight until smtp-server has been given the final reply,
        // so a graceful close() never ends the session between our decision and the reply.
        this.#onData(stream, session).then(
          (message) => {
            callback(null, message);
            this.#finishTransaction(this.#state(session));
          },
          (error: unknown) => {
            callback(error instanceof SmtpReplyError ? error : this.#unexpected(session, error));
            this.#finishTransaction(this.#state(session));
          },
        );
      },
      onClose: (session) => this.#onClose(session),
    };
    this.#server = new SMTPServer(this.#options);
    this.#greetTrustedAtOnce();
    this.#server.on('error', (error) => this.#log.warn({ event: 'smtp_error', err: error }, 'SMTP connection error'));
    if (config.nextHop === null) this.#maildir = new Maildir(join(config.dataDir, 'maildir'));
  }

  get address(): { host: string; port: number } {
    return this.#address;
  }

  async listen(): Promise<void> {
    const { host, port } = this.#config.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.server.off('error', onError);
        resolve();
      });
    });
    const address = this.#server.server.address();
    if (address && typeof address === 'object') this.#address = { host: address.address, port: address.port };
    this.#log.info({ event: 'gateway_listening', ...this.#address, nextHop: this.#config.nextHop ?? 'maildir' }, 'gateway listening');
  }

  async close(): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.server.close(() => resolve()));
    await new Promise<void>((resolve) => (this.#inFlight === 0 ? resolve() : this.#idleWaiters.push(resolve)));
    // Nothing is in flight: the remaining sessions are idle, end them the way smtp-server would.
    const connections = (this.#server as unknown as { connections: Set<PatchableConnection> }).connections;
    for (const connection of connections) {
      connection.send(421, formatReplyText(SMTP_REPLIES.SHUTTING_DOWN), false);
      connection.close();
    }
    await stopped;
    await this.#pool.close();
    this.#log.info({ event: 'gateway_closed' }, 'gateway closed');
  }

  reload(config: Config): void {
    const needsRestart: string[] = [];
    if (config.listen.host !== this.#config.listen.host || config.listen.port !== this.#config.listen.port) needsRestart.push('NIMBUS_LISTEN');
    if (JSON.stringify(config.tls) !== JSON.stringify(this.#config.tls)) needsRestart.push('NIMBUS_TLS_CERT/NIMBUS_TLS_KEY');
    const previousNextHop = this.#config.nextHop;
    this.#config = config;
    if (!this.#hooks.scanner) this.#scanner = this.#policyOnlyScanner(config);
    // smtp-server reads these options per connection/command, so changing them takes effect.
    this.#options.size = config.maxMessageSize;
    this.#options.maxClients = config.maxConnections;
    this.#options.socketTimeout = config.socketTimeoutMs;
    this.#maildir = config.nextHop === null ? new Maildir(join(config.dataDir, 'maildir')) : null;
    // Idle sessions to a next hop that is no longer the configured one end now.
    if (JSON.stringify(config.nextHop) !== JSON.stringify(previousNextHop)) void this.#pool.drain();
    this.#log.info({ event: 'gateway_reloaded', needsRestart }, needsRestart.length > 0 ? `configuration reloaded; restart needed for ${needsRestart.join(', ')}` : 'configuration reloaded');
  }

  /** Without a scanner of its own (a bare gateway, tests): the scan core with no reputation. */
  #policyOnlyScanner(config: Config): Scanner {
    return new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: this.#log });
  }

  /**
   * smtp-server waits 100 ms before its 220 on every connection to catch clients that talk
   * first (hard-coded in SMTPConnection.init). That is worth it for strangers, but a trusted MTA
   * (Postfix handing over its queue, one message per connection) would pay it for every message:
   * with 20 connections it alone caps the relay near 200 messages/s. A trusted client is greeted
   * as soon as it is accepted; the delayed call then finds the connection ready and does nothing.
   */
  #greetTrustedAtOnce(): void {
    const server = this.#server as unknown as PatchableServer;
    const connect = server.connect.bind(server);
    server.connect = (socket, options) => {
      connect(socket, options);
      let connection: PatchableConnection | undefined;
      for (const candidate of server.connections) if (candidate._socket === socket) connection = candidate;
      if (!connection || connection._ready || connection._closing || !this.#trusted(connection.remoteAddress)) return;
      // Over maxClients smtp-server has already answered 421 and greets nobody.
      if (this.#options.maxClients && server.connections.size > this.#options.maxClients) return;
      const ready = connection.connectionReady.bind(connection);
      let started = false;
      connection.connectionReady = (next) => {
        if (started) return;
        started = true;
        ready(next);
      };
      connection.connectionReady();
    };
  }

  /**
   * The last answer, for its address and list: a session asks up to five times, and sessions
   * from one MTA in front share an address (each BlockList check builds a SocketAddress, ~0.8%
   * of a worker's CPU on the 5 KB mix). A reloaded config brings a new list, so a new answer.
   */
  #lastTrusted: { list: BlockList; address: string; trusted: boolean } | null = null;

  #trusted(address: string): boolean {
    const list = this.#config.trustedBlockList;
    const last = this.#lastTrusted;
    if (last !== null && last.list === list && last.address === address) return last.trusted;
    const trusted = inBlockList(list, address);
    this.#lastTrusted = { list, address, trusted };
    return trusted;
  }

  #onConnect(session: SMTPServerSession, callback: (error?: Error | null) => void): void {
    const trusted = this.#trusted(session.remoteAddress);
    // Disabled commands are not advertised in the EHLO reply (README: offered only to trusted networks).
    session.disabledCommands = trusted ? ['AUTH'] : ['AUTH', 'XCLIENT', 'XFORWARD'];
    const state = newConnectionState(this.#log.child({ cid: session.id, client: session.remoteAddress }));
    const connections = (this.#server as unknown as { connections: Set<PatchableConnection> }).connections;
    for (const connection of connections) {
      if (connection.session !== session) continue;
      const send = connection.send.bind(connection);
      connection.send = (code, data, context) => {
        // smtp-server names the command as the context of its "command not recognized".
        if (!trusted && code === 500 && typeof context === 'string' && PROXY_COMMANDS.has(context)) {
          send(SMTP_REPLIES.PROXY_COMMAND_REFUSED.code, formatReplyText(SMTP_REPLIES.PROXY_COMMAND_REFUSED), false);
          return;
        }
        // Our texts carry their exact enhanced code (smtp-replies.ts): stop smtp-server adding one.
        send(code, data, context === undefined && typeof data === 'string' && ENHANCED_CODE_PREFIX.test(data) ? false : context);
        if (state.hangUpAfterReply && code >= 400) {
          state.hangUpAfterReply = false;
          // smtp-server closes the connection on any 421 it sends, here before its parser hands
          // over a command the client pipelined after the refused one: that one gets no reply.
          send(SMTP_REPLIES.TOO_MANY_REFUSED_RECIPIENTS.code, formatReplyText(SMTP_REPLIES.TOO_MANY_REFUSED_RECIPIENTS), false);
        }
      };
    }
    this.#connections.set(session.id, state);
    callback();
  }

  #onClose(session: SMTPServerSession): void {
    const state = this.#connections.get(session.id);
    this.#connections.delete(session.id);
    if (!state) return;
    // A transaction the sender abandoned (QUIT after a refused RCPT, dropped connection) ends here.
    this.#finishTransaction(state);
    // Kept for the next sender when its transaction is over, ended otherwise (hop-pool.ts).
    if (state.hop) this.#pool.release(state.hop, this.#closing ? null : this.#config.nextHop);
  }

  #state(session: SMTPServerSession): ConnectionState {
    let state = this.#connections.get(session.id);
    if (!state) {
      state = newConnectionState(this.#log.child({ cid: session.id }));
      this.#connections.set(session.id, state);
    }
    return state;
  }

  #callback(session: SMTPServerSession, callback: (error?: Error | null) => void, work: () => Promise<void>): void {
    work().then(
      () => callback(),
      (error: unknown) => callback(error instanceof SmtpReplyError ? error : this.#unexpected(session, error)),
    );
  }

  #unexpected(session: SMTPServerSession, error: unknown): SmtpReplyError {
    this.#state(session).log.error({ event: 'gateway_error', err: error }, 'unexpected error, answered 451');
    return new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
  }

  #begin(): void {
    this.#inFlight++;
  }

  #end(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** The client as a trusted MTA reported it (XCLIENT changes remoteAddress itself; XFORWARD does not). */
  #client(session: SMTPServerSession): { ip: string; helo: string; name: string | null } {
    const forwardedIp = session.xForward?.get('ADDR');
    const ip = typeof forwardedIp === 'string' && forwardedIp !== '' ? forwardedIp : session.remoteAddress;
    const pick = (value: string | number | false | undefined): string | null => (typeof value === 'string' && value !== '' && !value.startsWith('[') ? value : null);
    const helo = pick(session.xClient?.get('HELO')) ?? pick(session.xForward?.get('HELO')) ?? (session.hostNameAppearsAs || 'unknown');
    const name = pick(session.xForward?.get('NAME')) ?? (session.clientHostname || null);
    return { ip, helo, name };
  }

  async #onMailFrom(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    if (this.#closing) throw new SmtpReplyError(SMTP_REPLIES.SHUTTING_DOWN);
    const state = this.#state(session);
    if (state.transaction) this.#finishTransaction(state);
    const transaction: Transaction = { queueId: newQueueId(), started: Date.now(), mailFrom: address.address ?? '', relayRcpts: [], trapRcpts: [] };
    const target = this.#config.nextHop;
    if (target === null) {
      state.transaction = transaction;
      this.#begin();
      return;
    }
    const reply = await this.#hopCommand(state, async (hop) => {
      const args = address.args as unknown as Record<string, string | boolean> | false;
      const size = Number(args ? args.SIZE : undefined);
      return hop.mail(transaction.mailFrom, {
        smtpUtf8: Boolean(session.envelope.smtpUtf8),
        eightBitMime: session.envelope.bodyType === '8bitmime',
        ...(Number.isFinite(size) && size > 0 ? { size } : {}),
      });
    }, true);
    if (reply.code >= 300) throw mirroredReplyError(reply.code, reply.text);
    state.transaction = transaction;
    this.#begin();
  }

  /**
   * Runs a command on this connection's next-hop session, first taking one for a new transaction
   * (RSET of this connection's own session if a transaction is open there, else an idle pooled
   * one, else a new one). Any failure of the next hop itself becomes 451 4.4.1.
   */
  async #hopCommand(state: ConnectionState, command: (hop: NextHopSession) => Promise<SmtpResponse>, fresh = false): Promise<SmtpResponse> {
    const target = this.#config.nextHop!;
    try {
      if (fresh && state.hop?.usable && state.hop.inTransaction) {
        const reset = await state.hop.rset().catch(() => null);
        if (reset?.code !== 250) {
          state.hop.close();
          state.hop = null;
        }
      }
      if (!state.hop?.usable) {
        if (!fresh) throw new NextHopError('NEXT_HOP_DROPPED', 'next hop session lost during the transaction');
        const pooled = this.#pool.take(target);
        if (pooled) {
          state.hop = pooled;
          try {
            return await command(pooled);
          } catch (error) {
            if (!(error instanceof NextHopError)) throw error;
            // The next hop closed the idle session just as it was taken: nothing of this
            // transaction has reached it, so a new session is as good.
            pooled.close();
            state.hop = null;
          }
        }
        state.hop = await NextHopSession.open({ target, hostname: this.#config.hostname, timeoutMs: this.#config.nextHopTimeoutMs });
      }
      return await command(state.hop);
    } catch (error) {
      if (!(error instanceof NextHopError)) throw error;
      state.log.warn({ event: 'next_hop_failed', code: error.code, err: error.message }, 'next hop unavailable, answered 451');
      state.hop?.close();
      state.hop = null;
      throw new SmtpReplyError(SMTP_REPLIES.NEXT_HOP_UNAVAILABLE);
    }
  }

  async #onRcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    const state = this.#state(session);
    const transaction = state.transaction;
    if (!transaction) throw new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    const recipient = address.address;
    const trusted = this.#trusted(session.remoteAddress);
    const verdict = checkRecipient(recipient, trusted, this.#config.relayDomains);
    if (verdict === 'relay-denied') {
      state.log.info({ event: 'relay_denied', rcpt: recipient }, 'relay denied');
      throw this.#recipientRefused(state, trusted, new SmtpReplyError(SMTP_REPLIES.RELAY_DENIED));
    }
    if (verdict === 'routing-refused') {
      state.log.info({ event: 'routing_refused', rcpt: recipient }, 'sender-specified routing refused');
      throw this.#recipientRefused(state, trusted, new SmtpReplyError(SMTP_REPLIES.ROUTING_REFUSED));
    }
    if (session.envelope.rcptTo.length >= this.#config.maxRecipients) throw new SmtpReplyError(SMTP_REPLIES.TOO_MANY_RECIPIENTS);
    if (isSpamTrap(this.#config, recipient)) {
      // Accepted by the gateway itself: a trap address must never reach a mailbox.
      transaction.trapRcpts.push(recipient);
      return;
    }
    if (this.#config.nextHop !== null) {
      const reply = await this.#hopCommand(state, (hop) => hop.rcpt(recipient));
      if (reply.code >= 300) throw this.#recipientRefused(state, trusted, mirroredReplyError(reply.code, reply.text));
    }
    transaction.relayRcpts.push(recipient);
  }

  /**
   * Counts a refused recipient of an untrusted client (relay policy or the next hop's refusal;
   * not 452 for too many recipients, which only asks for another transaction) and, at
   * NIMBUS_MAX_REFUSED_RECIPIENTS, ends the session after this refusal, as Postfix's
   * smtpd_hard_error_limit does. Trusted MTAs are not cut off: they relay queued mail whose
   * recipients the next hop may refuse by the dozen, and a 421 would only defer it to fail again.
   */
  #recipientRefused(state: ConnectionState, trusted: boolean, refusal: SmtpReplyError): SmtpReplyError {
    if (trusted) return refusal;
    state.refusedRecipients++;
    if (state.refusedRecipients >= this.#config.maxRefusedRecipients) {
      state.hangUpAfterReply = true;
      state.log.info({ event: 'refused_recipients_limit', refused: state.refusedRecipients }, 'too many refused recipients, connection closed');
    }
    return refusal;
  }

  async #onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const state = this.#state(session);
    const transaction = state.transaction;
    if (!transaction) {
      stream.resume();
      throw new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    }
    const spool = new MessageSpool(join(this.#config.dataDir, 'spool'), transaction.queueId, this.#config.spoolThreshold);
    try {
      return await this.#process(stream, session, state, transaction, spool);
    } finally {
      spool.dispose();
    }
  }

  #finishTransaction(state: ConnectionState): void {
    if (state.transaction) {
      state.transaction = null;
      this.#end();
    }
  }

  async #process(stream: SMTPServerDataStream, session: SMTPServerSession, state: ConnectionState, transaction: Transaction, spool: MessageSpool): Promise<string> {
    // Read the stream to its end whatever happens (STYLE avoid-4), keeping nothing past the limit.
    let spoolError: unknown = null;
    let oversized = false;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (oversized || spoolError) continue;
      if (spool.size + chunk.length > this.#config.maxMessageSize) {
        oversized = true;
        continue;
      }
      try {
        await spool.write(chunk);
      } catch (error) {
        spoolError = error;
      }
    }
    if (!spoolError) await spool.finish().catch((error: unknown) => (spoolError = error));
    const client = this.#client(session);
    const size = stream.byteLength;
    const base = { event: 'message', queueId: transaction.queueId, clientIp: client.ip, helo: client.helo, from: transaction.mailFrom, rcptCount: transaction.relayRcpts.length + transaction.trapRcpts.length, size };
    if (oversized || stream.sizeExceeded) {
      await this.#resetHop(state);
      state.log.info({ ...base, action: 'refused', reply: '552 5.3.4', ms: Date.now() - transaction.started }, 'message too big');
      throw new SmtpReplyError(SMTP_REPLIES.MESSAGE_TOO_BIG);
    }
    if (spoolError) {
      await this.#resetHop(state);
      state.log.error({ ...base, err: spoolError }, 'spooling failed, answered 451');
      throw new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    }

    const trustedClient = this.#trusted(session.remoteAddress);
    const request: ScanRequest = {
      id: transaction.queueId,
      message: { size, read: () => spool.readAll(), stream: () => spool.stream(0) },
      envelope: { mailFrom: transaction.mailFrom, rcptTo: [...transaction.relayRcpts, ...transaction.trapRcpts] },
      client: { ip: client.ip, helo: client.helo, name: client.name, trusted: trustedClient },
    };
    let scan: ScanResult;
    try {
      scan = await this.#scanner.scan(request);
    } catch (error) {
      state.log.error({ event: 'scan_failed', queueId: transaction.queueId, err: error }, 'scan failed, relaying with verdict unknown');
      scan = undecided('failed', { trapHits: transaction.trapRcpts, recipients: request.envelope.rcptTo.length, trustedClient, timings: { queuedMs: 0, analysisMs: 0, lookupMs: 0, totalMs: 0 } }, this.#config);
    }

    const parts = this.#relayParts(session, transaction, spool, scan, client);
    let action = scan.action;
    let nextHop: SmtpResponse | null = null;
    let reply: SmtpReplyError | null = null;
    let quarantineId: string | null = null;
    if (action === 'quarantine' && !this.#hooks.quarantine) {
      state.log.warn({ event: 'quarantine_unavailable', queueId: transaction.queueId }, 'quarantine requested but no quarantine configured: tagging instead');
      action = 'tag';
    }
    if (action === 'reject') {
      await this.#resetHop(state);
      reply = new SmtpReplyError(SMTP_REPLIES.SPAM_REJECTED);
    } else if (action === 'discard' || action === 'trap') {
      await this.#resetHop(state);
    } else if (action === 'quarantine') {
      await this.#resetHop(state);
      try {
        const input = { queueId: transaction.queueId, clientIp: client.ip, clientHelo: client.helo, trustedClient, envelope: request.envelope, spamtrapHits: scan.trapHits, size };
        quarantineId = await this.#hooks.quarantine!.store(input, await collect(parts));
      } catch (error) {
        state.log.error({ event: 'quarantine_failed', queueId: transaction.queueId, err: error }, 'quarantine failed, answered 451');
        reply = new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
      }
    } else if (transaction.relayRcpts.length === 0) {
      // Only spam-trap recipients: nothing to relay.
      await this.#resetHop(state);
    } else if (this.#config.nextHop !== null) {
      try {
        nextHop = await this.#hopCommand(state, (hop) => hop.data(parts));
        if (nextHop.code >= 300) reply = mirroredReplyError(nextHop.code, nextHop.text);
      } catch (error) {
        if (!(error instanceof SmtpReplyError)) throw error;
        reply = error;
      }
    } else {
      try {
        await this.#maildir!.deliver(parts);
      } catch (error) {
        state.log.error({ event: 'maildir_failed', queueId: transaction.queueId, err: error }, 'Maildir delivery failed, answered 451');
        reply = new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
      }
    }

    if (this.#hooks.observer && (reply === null || action === 'reject')) {
      try {
        await this.#hooks.observer.processed({ id: transaction.queueId, time: new Date(transaction.started), clientIp: client.ip, helo: client.helo, size, scan, action, nextHop });
      } catch (error) {
        state.log.error({ event: 'observer_failed', queueId: transaction.queueId, err: error }, 'statistics observer failed');
      }
    }
    const final = reply ? `${reply.responseCode} ${reply.message}` : `250 ${formatReplyText(SMTP_REPLIES.MESSAGE_ACCEPTED)} ${transaction.queueId}`;
    state.log.info(
      { ...base, verdict: scan.verdict, score: scan.score, action, quarantineId, nextHop: nextHop ? `${nextHop.code} ${nextHop.text}` : null, reply: final, ms: Date.now() - transaction.started },
      'message processed',
    );
    if (reply) throw reply;
    // A message accepted forgives earlier refusals (Postfix counts errors "without delivering mail").
    state.refusedRecipients = 0;
    // smtp-server adds 2.6.0 (DATA_OK) to a successful DATA reply itself.
    return `${SMTP_REPLIES.MESSAGE_ACCEPTED.text} ${transaction.queueId}`;
  }

  /** Abandons the next-hop transaction without DATA; the session stays for the next one. */
  async #resetHop(state: ConnectionState): Promise<void> {
    if (!state.hop?.usable) return;
    const reset = await state.hop.rset().catch(() => null);
    if (reset?.code !== 250) {
      state.hop.close();
      state.hop = null;
    }
  }

  /** Received + verdict headers, then the (edited) header block, then the untouched body. */
  #relayParts(session: SMTPServerSession, transaction: Transaction, spool: MessageSpool, scan: ScanResult, client: { ip: string; helo: string; name: string | null }): Part[] {
    const received = formatReceived({
      helo: client.helo,
      clientHostname: client.name,
      clientIp: client.ip,
      hostname: this.#config.hostname,
      protocol: session.transmissionType || 'ESMTP',
      queueId: transaction.queueId,
      recipients: transaction.relayRcpts,
      date: new Date(transaction.started),
    });
    const prepended = Buffer.from([received, ...scan.headers.add.map(formatHeaderField)].map((field) => `${field}\r\n`).join(''), 'utf8');
    const body = (start: number): Part[] => spool.chunksFrom(start) ?? [() => spool.stream(start)];
    let block = spool.headerBlock();
    if (block === null) return [prepended, ...body(0)];
    block = stripVerdictFields(block, scan.headers.removePrefixes).block;
    if (scan.headers.subjectTag !== null) block = tagSubject(block, scan.headers.subjectTag);
    return [prepended, block, ...body(spool.headerLength)];
  }
}

function newConnectionState(log: Logger): ConnectionState {
  return { log, hop: null, transaction: null, refusedRecipients: 0, hangUpAfterReply: false };
}

async function collect(parts: readonly Part[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    if (Buffer.isBuffer(part)) chunks.push(part);
    else for await (const chunk of part()) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** 12 upper-case hex digits, like a Postfix queue id: unique enough, short in logs. */
function newQueueId(): string {
  return randomBytes(6).toString('hex').toUpperCase();
}
