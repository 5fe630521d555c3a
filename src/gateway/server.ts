/**
 * `startGateway`: the SMTP listener (smtp-server) and its sessions. Per message, the
 * before-queue path: relay policy at RCPT (recipient-policy.ts), the next hop in lockstep
 * (hop-lockstep.ts, next-hop.ts), then at DATA the spool, the scan, the verdict's action and the
 * record (message-path.ts) before the sender's final reply. Where smtp-server's internals are
 * reached into is smtp-server-patches.ts. No process-wide state: several gateways may run in one
 * process (tests) or one per worker process.
 */
import { join } from 'node:path';
import type { BlockList } from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { inBlockList, type Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { Scanner } from '../scan/scanner.js';
import { isSpamTrap } from '../scan/traps.js';
import type { MessageScanner } from '../scan/types.js';
import type { GatewayHooks } from './hooks.js';
import { HopLockstep } from './hop-lockstep.js';
import { Maildir } from './maildir.js';
import { relayMessage, type RelayClient } from './message-path.js';
import { NextHopPool } from './hop-pool.js';
import { checkRecipient } from './recipient-policy.js';
import { newConnectionState, newQueueId, type ConnectionState, type Transaction } from './session-state.js';
import { connectionsOf, greetTrustedAtOnce, patchReplies } from './smtp-server-patches.js';
import { protocolOptions } from './smtp-options.js';
import { SMTP_REPLIES, SmtpReplyError, formatReplyText, mirroredReplyError } from './smtp-replies.js';
import { MessageSpool } from '../scan/spool.js';

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
  #hops = new HopLockstep(this.#pool, () => this.#config);
  #address = { host: '', port: 0 };

  constructor(config: Config, log: Logger, hooks: GatewayHooks) {
    this.#config = config;
    this.#log = log;
    this.#hooks = hooks;
    this.#scanner = hooks.scanner ?? this.#policyOnlyScanner(config);
    this.#options = {
      ...protocolOptions(config, (ip) => this.#trusted(ip)),
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
    greetTrustedAtOnce(this.#server, (address) => this.#trusted(address), () => this.#options.maxClients);
    this.#server.on('error', (error) => this.#log.warn({ event: 'gateway.smtp_error', err: error }, 'SMTP connection error'));
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
    this.#log.info({ event: 'gateway.listening', ...this.#address, nextHop: this.#config.nextHop ?? 'maildir' }, 'gateway listening');
  }

  async close(): Promise<void> {
    this.#closing = true;
    const stopped = new Promise<void>((resolve) => this.#server.server.close(() => resolve()));
    await new Promise<void>((resolve) => (this.#inFlight === 0 ? resolve() : this.#idleWaiters.push(resolve)));
    // Nothing is in flight: the remaining sessions are idle, end them the way smtp-server would.
    for (const connection of connectionsOf(this.#server)) {
      connection.send(421, formatReplyText(SMTP_REPLIES.SHUTTING_DOWN), false);
      connection.close();
    }
    await stopped;
    await this.#pool.close();
    this.#log.info({ event: 'gateway.closed' }, 'gateway closed');
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
    this.#log.info({ event: 'gateway.reloaded', needsRestart }, needsRestart.length > 0 ? `configuration reloaded; restart needed for ${needsRestart.join(', ')}` : 'configuration reloaded');
  }

  /** Without a scanner of its own (a bare gateway, tests): the scan core with no reputation. */
  #policyOnlyScanner(config: Config): Scanner {
    return new Scanner({ policy: config, lookups: null, feedback: null, sampleMaxBytes: 0, imageHashes: undefined, log: this.#log });
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
    // Disabled commands are not advertised in the EHLO reply (docs/admin/gateway.md: offered only to trusted networks).
    session.disabledCommands = trusted ? ['AUTH'] : ['AUTH', 'XCLIENT', 'XFORWARD'];
    const state = newConnectionState(this.#log.child({ cid: session.id, client: session.remoteAddress }));
    patchReplies(this.#server, session, trusted, state);
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
    this.#state(session).log.error({ event: 'gateway.error', err: error }, 'unexpected error, answered 451');
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
  #client(session: SMTPServerSession): RelayClient {
    const forwardedIp = session.xForward?.get('ADDR');
    const ip = typeof forwardedIp === 'string' && forwardedIp !== '' ? forwardedIp : session.remoteAddress;
    const pick = (value: string | number | false | undefined): string | null => (typeof value === 'string' && value !== '' && !value.startsWith('[') ? value : null);
    const helo = pick(session.xClient?.get('HELO')) ?? pick(session.xForward?.get('HELO')) ?? (session.hostNameAppearsAs || 'unknown');
    const name = pick(session.xForward?.get('NAME')) ?? (session.clientHostname || null);
    return { ip, helo, name, trusted: this.#trusted(session.remoteAddress) };
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
    const reply = await this.#hops.command(state, async (hop) => {
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

  async #onRcptTo(address: SMTPServerAddress, session: SMTPServerSession): Promise<void> {
    const state = this.#state(session);
    const transaction = state.transaction;
    if (!transaction) throw new SmtpReplyError(SMTP_REPLIES.LOCAL_ERROR);
    const recipient = address.address;
    const trusted = this.#trusted(session.remoteAddress);
    const verdict = checkRecipient(recipient, trusted, this.#config.relayDomains);
    if (verdict === 'relay-denied') {
      state.log.info({ event: 'gateway.relay_denied', rcpt: recipient }, 'relay denied');
      throw this.#recipientRefused(state, trusted, new SmtpReplyError(SMTP_REPLIES.RELAY_DENIED));
    }
    if (verdict === 'routing-refused') {
      state.log.info({ event: 'gateway.routing_refused', rcpt: recipient }, 'sender-specified routing refused');
      throw this.#recipientRefused(state, trusted, new SmtpReplyError(SMTP_REPLIES.ROUTING_REFUSED));
    }
    if (session.envelope.rcptTo.length >= this.#config.maxRecipients) throw new SmtpReplyError(SMTP_REPLIES.TOO_MANY_RECIPIENTS);
    if (isSpamTrap(this.#config, recipient)) {
      // Accepted by the gateway itself: a trap address must never reach a mailbox.
      transaction.trapRcpts.push(recipient);
      return;
    }
    if (this.#config.nextHop !== null) {
      const reply = await this.#hops.command(state, (hop) => hop.rcpt(recipient));
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
      state.log.info({ event: 'gateway.refused_recipients_limit', refused: state.refusedRecipients }, 'too many refused recipients, connection closed');
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
      const context = { config: this.#config, scanner: this.#scanner, hooks: this.#hooks, maildir: this.#maildir, hops: this.#hops };
      return await relayMessage(context, stream, session, state, transaction, spool, this.#client(session));
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
}
