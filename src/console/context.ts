/** What the console's pages read and change, opened once per console process. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { Quarantine } from '../quarantine/store.js';
import type { OpenedReputation } from '../reputation/engine-types.js';
import type { HistoryStore } from '../stats/history-store.js';
import type { Statistics } from '../stats/index.js';
import type { Html } from './html.js';
import type { ServiceAdmin } from './service-admin.js';
import type { LoginThrottle, Session, Sessions } from './sessions.js';
import type { ConsoleUsers } from './users.js';

export interface ConsoleContext {
  readonly config: Config;
  readonly history: HistoryStore;
  readonly stats: Statistics;
  /** The gateway's embedded engine (local-reputation.sqlite), shared with the running gateway. */
  readonly local: OpenedReputation;
  readonly quarantine: Quarantine;
  /** The reputation service with an admin key; null without NIMBUS_CONSOLE_ADMIN_KEY. */
  readonly service: ServiceAdmin | null;
  readonly users: ConsoleUsers;
  readonly sessions: Sessions;
  readonly throttle: LoginThrottle;
  readonly log: Logger;
}

/** A form body: every field's values, in order (checkboxes repeat a name). */
export type Form = Readonly<Record<string, readonly string[]>>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in session (set by the console's onRequest hook); null on /login and /healthz. */
    consoleSession: Session | null;
  }
}

export function sessionOf(request: FastifyRequest): Session {
  const session = request.consoleSession;
  if (!session) throw new Error('a console page was reached without a session');
  return session;
}

export function field(form: Form | undefined, name: string): string {
  return form?.[name]?.[0] ?? '';
}

export function sendPage(reply: FastifyReply, markup: Html, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(markup.text);
}

/** Logs a change with who made it (DESIGN: every change is logged with its user). */
export function logChange(context: ConsoleContext, session: Session, change: string, target: string, result: string, extra: Record<string, unknown> = {}): void {
  context.log.info({ event: 'console.change', user: session.user, change, target, result, ...extra }, `${session.user}: ${change} ${target}: ${result}`);
}
