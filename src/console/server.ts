/**
 * The console's HTTP server: fastify with the security every page relies on, in one place.
 * - No page without a session, /healthz, /login and /assets aside: a GET is sent to /login, any
 *   other method gets 401.
 * - Every POST (every change) carries the session's CSRF token in `_csrf`, or gets 403.
 * - Sessions live in an HttpOnly, SameSite=Strict cookie, Secure when the request came over TLS
 *   (a TLS proxy on loopback says so with X-Forwarded-Proto).
 * - Logins are throttled per client address; passwords are checked against scrypt hashes.
 * - Every answer carries a CSP without script, nosniff, no-referrer and no-store.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { CONSOLE_CSS } from './assets.js';
import { field, sendPage, type ConsoleContext, type Form } from './context.js';
import { html } from './html.js';
import { page } from './layout.js';
import { registerHistoryPages } from './pages-history.js';
import { registerKeysPage } from './pages-keys.js';
import { registerOverviewPage } from './pages-overview.js';
import { registerParticipationPage } from './pages-participation.js';
import { registerQuarantinePages } from './pages-quarantine.js';
import { registerWhyPage } from './pages-why.js';
import { csrfMatches } from './sessions.js';

export const SESSION_COOKIE = 'nimbus_console';
const PUBLIC_PATHS = new Set(['/healthz', '/login', '/assets/console.css']);
const FORM_LIMIT_BYTES = 64 * 1024;

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
} as const;

function parseForm(body: string): Form {
  const form: Record<string, string[]> = {};
  for (const [name, value] of new URLSearchParams(body)) (form[name] ??= []).push(value);
  return form;
}

function cookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

function sessionCookie(request: FastifyRequest, value: string, maxAge: number | null): string {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${secure}${maxAge === null ? '' : `; Max-Age=${maxAge}`}`;
}

export function buildConsole(context: ConsoleContext): FastifyInstance {
  // Only a proxy on this host may say the request came over TLS.
  const app = Fastify({ logger: false, trustProxy: '127.0.0.1,::1' });
  app.decorateRequest('consoleSession', null);
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT_BYTES }, (_request, body, done) => done(null, parseForm(body as string)));

  app.addHook('onRequest', async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    const path = request.url.split('?')[0]!;
    request.consoleSession = context.sessions.get(cookie(request, SESSION_COOKIE));
    if (PUBLIC_PATHS.has(path) || request.consoleSession) return;
    if (request.method === 'GET' || request.method === 'HEAD') return reply.redirect('/login', 303);
    return reply.code(401).type('text/plain').send('log in first\n');
  });
  // After the body is parsed: a change without this session's token is refused, and logged.
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST' || request.url === '/login') return;
    const session = request.consoleSession;
    if (session && csrfMatches(session, field(request.body as Form | undefined, '_csrf'))) return;
    context.log.warn({ event: 'console.csrf_refused', user: session?.user ?? null, path: request.url, client: request.ip }, 'a POST without the session\'s CSRF token was refused');
    return reply.code(403).type('text/plain').send('refused: this form is stale or was not sent by the console (CSRF token missing or wrong); reload the page\n');
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/assets/console.css', async (_request, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=3600').send(CONSOLE_CSS));
  app.get('/login', async (request, reply) => loginPage(reply, request.consoleSession ? null : ''));
  app.post('/login', async (request, reply) => {
    const form = request.body as Form | undefined;
    const user = field(form, 'user');
    const wait = context.throttle.retryAfter(request.ip);
    if (wait > 0) {
      context.log.warn({ event: 'console.login_throttled', user, client: request.ip, retryAfter: wait }, 'console login refused: too many failed logins from this address');
      return loginPage(reply.header('retry-after', String(wait)), `Too many failed logins from your address: try again in ${Math.ceil(wait / 60)} minutes.`, 429);
    }
    let good = false;
    try {
      good = await context.users.verify(user, field(form, 'password'));
    } catch (error) {
      context.log.error({ event: 'console.login_failed', user, client: request.ip, err: error }, 'console login impossible: the user file cannot be read');
      return loginPage(reply, 'Logins are impossible now: the user file cannot be read (see the log).', 500);
    }
    if (!good) {
      context.throttle.failed(request.ip);
      context.log.warn({ event: 'console.login_failed', user, client: request.ip }, 'console login refused: wrong user or password');
      return loginPage(reply, 'Wrong user name or password.', 401);
    }
    context.throttle.succeeded(request.ip);
    const session = context.sessions.create(user);
    context.log.info({ event: 'console.login', user, client: request.ip }, `${user} logged in to the console`);
    return reply.header('set-cookie', sessionCookie(request, session.id, null)).redirect('/', 303);
  });
  app.post('/logout', async (request, reply) => {
    const session = request.consoleSession!;
    context.sessions.destroy(session.id);
    context.log.info({ event: 'console.logout', user: session.user }, `${session.user} logged out`);
    return reply.header('set-cookie', sessionCookie(request, '', 0)).redirect('/login', 303);
  });

  registerOverviewPage(app, context);
  registerHistoryPages(app, context);
  registerWhyPage(app, context);
  registerQuarantinePages(app, context);
  registerParticipationPage(app, context);
  registerKeysPage(app, context);
  return app;
}

/** The login form; `problem` null when already signed in (then: a link onwards). */
function loginPage(reply: FastifyReply, problem: string | null, status = 200): FastifyReply {
  if (problem === null) return sendPage(reply, page('Log in', null, html`<p>You are logged in. <a href="/">Go to the overview</a>.</p>`));
  return sendPage(
    reply,
    page(
      'Log in',
      null,
      html`${problem ? html`<p class="notice error" role="alert">${problem}</p>` : ''}
<form method="post" action="/login" class="login"><p><label>User <input name="user" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p><p><button type="submit">Log in</button></p></form>`,
    ),
    status,
  );
}
