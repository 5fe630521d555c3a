/**
 * Where the relay reaches into smtp-server (3.21.x) internals, kept in one place: greeting a
 * trusted MTA at once, sending our replies with their exact enhanced codes, refusing XCLIENT and
 * XFORWARD from untrusted clients by name, and hanging up after too many refused recipients.
 */
import type { Socket } from 'node:net';
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import type { ConnectionState } from './session-state.js';
import { ENHANCED_CODE_PREFIX, SMTP_REPLIES, formatReplyText } from './smtp-replies.js';

export interface PatchableConnection {
  session: SMTPServerSession;
  remoteAddress: string;
  _socket: Socket;
  _ready: boolean;
  _closing: boolean;
  connectionReady(next?: () => void): void;
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
}

/** The parts of SMTPServer that the trusted-client greeting reaches into. */
interface PatchableServer {
  connections: Set<PatchableConnection>;
  connect(socket: Socket, options: unknown): void;
}

/**
 * Disabled for untrusted sessions, so smtp-server neither advertises them nor runs them, but it
 * would answer them as unknown (500 5.5.2): they are known, and refused (550 5.7.0).
 */
const PROXY_COMMANDS: ReadonlySet<string> = new Set(['XCLIENT', 'XFORWARD']);

export function connectionsOf(server: SMTPServer): Set<PatchableConnection> {
  return (server as unknown as PatchableServer).connections;
}

/**
 * smtp-server waits 100 ms before its 220 on every connection to catch clients that talk
 * first (hard-coded in SMTPConnection.init). That is worth it for strangers, but a trusted MTA
 * (Postfix handing over its queue, one message per connection) would pay it for every message:
 * with 20 connections it alone caps the relay near 200 messages/s. A trusted client is greeted
 * as soon as it is accepted; the delayed call then finds the connection ready and does nothing.
 */
export function greetTrustedAtOnce(smtp: SMTPServer, isTrusted: (address: string) => boolean, maxClients: () => number | undefined): void {
  const server = smtp as unknown as PatchableServer;
  const connect = server.connect.bind(server);
  server.connect = (socket, options) => {
    connect(socket, options);
    let connection: PatchableConnection | undefined;
    for (const candidate of server.connections) if (candidate._socket === socket) connection = candidate;
    if (!connection || connection._ready || connection._closing || !isTrusted(connection.remoteAddress)) return;
    // Over maxClients smtp-server has already answered 421 and greets nobody.
    const max = maxClients();
    if (max && server.connections.size > max) return;
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

/** Wraps the session's reply sending (see the top of this file). */
export function patchReplies(smtp: SMTPServer, session: SMTPServerSession, trusted: boolean, state: ConnectionState): void {
  for (const connection of connectionsOf(smtp)) {
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
}
