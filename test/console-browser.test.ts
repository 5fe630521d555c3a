/**
 * `nimbus console` in a real browser (Debian's chromium, driven by playwright-core), beside a real
 * gateway that relays to smtp-sink and participates with a real `nimbus reputation`: what the
 * admin sees and does on each page, that mail values stay text, and that changes need a session's
 * CSRF token. The run also makes the screenshots of docs/admin/console.md.
 *
 * One browser and one set of processes for the file; the tests run in order (the login throttle
 * last: it locks 127.0.0.1 out).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { chromium, type Browser, type Page } from 'playwright-core';
import { GTUBE } from '../src/scan/gtube.js';
import { PROJECT_ROOT, runNimbus, startGatewayProcess, startNimbus, startReputationProcess, type GatewayProcess, type NimbusProcess, type ReputationProcess } from './helpers/nimbus.js';
import { freePort } from './helpers/ports.js';
import { startSmtpSink, type SmtpSink } from './helpers/smtp.js';
import { swaks } from './helpers/swaks.js';
import { waitFor } from './helpers/wait.js';

const USER = 'admin';
const PASSWORD = 'correct horse battery staple';
const WHY_DOMAIN = 'why-probe.test';
const RELEASE_MARKER = 'Release-Marker-4711';
const SCRIPT_SUBJECT = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;

let sink: SmtpSink;
let service: ReputationProcess;
let gateway: GatewayProcess;
let consoleProcess: NimbusProcess;
let browser: Browser;
let page: Page;
let base: string;
let sent = 0;
let adminKey: { token: string; id: string };

// The screenshots of docs/admin/console.md are rewritten only when asked for
// (NIMBUS_CONSOLE_SCREENSHOTS=yes), so a plain `npm test` leaves the checkout as it was; the
// page is rendered to an image either way, so a page that cannot be drawn still fails here.
const shotsWanted = process.env.NIMBUS_CONSOLE_SCREENSHOTS === 'yes';
const shot = (name: string, fullPage = true) => page.screenshot({ ...(shotsWanted ? { path: join(PROJECT_ROOT, 'docs', 'admin', `console-${name}.png`) } : {}), fullPage });

async function send(args: readonly string[]): Promise<void> {
  const result = await swaks(gateway.port, ['--to', 'bob@example.com', '--from', 'alice@example.org', '--helo', 'sender.example', ...args]);
  if (result.exitCode !== 0) throw new Error(`swaks failed: ${result.output}`);
  sent += 1;
}

async function historyRows(): Promise<number> {
  await page.goto(`${base}/history`);
  return page.locator('#history tbody tr').count();
}

async function login(password = PASSWORD): Promise<number> {
  await page.goto(`${base}/login`);
  await page.fill('input[name=user]', USER);
  await page.fill('input[name=password]', password);
  const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'), page.click('button[type=submit]')]);
  return response.status();
}

test.before(async () => {
  sink = await startSmtpSink();
  service = await startReputationProcess(null);
  const [reporter, admin] = await Promise.all([service.addKey('reporter'), service.addKey('admin', 'console')]);
  adminKey = admin;
  // What an env file would hold: the gateway and the console read the same.
  const shared = {
    NIMBUS_NEXT_HOP: `127.0.0.1:${sink.port}`,
    NIMBUS_SPAM_ACTION: 'quarantine',
    NIMBUS_HISTORY_SUBJECTS: 'yes',
    NIMBUS_WEIGHT_URL: '10',
    NIMBUS_PARTICIPATION: 'standard',
    NIMBUS_ACCEPT_STATEMENT: 'yes',
    NIMBUS_REPUTATION_URL: service.url,
    NIMBUS_REPUTATION_KEY: reporter.token,
    NIMBUS_CONSOLE_ADMIN_KEY: admin.token,
  };
  gateway = await startGatewayProcess(null, shared);
  const env = { ...shared, NIMBUS_DATA_DIR: gateway.dataDir, NIMBUS_CONSOLE_LISTEN: `127.0.0.1:${await freePort()}`, NIMBUS_LOG_LEVEL: 'info' };
  const passwd = await runNimbus(['console', 'passwd', USER], env, { input: `${PASSWORD}\n${PASSWORD}\n` });
  if (passwd.code !== 0) throw new Error(`nimbus console passwd failed: ${passwd.stderr}`);
  consoleProcess = await startNimbus(null, ['console'], env, { ready: 'console.listening' });
  base = String(consoleProcess.events('console.listening')[0]!.url);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

test.after.always(async () => {
  await browser?.close();
  await Promise.all([consoleProcess?.stop(), gateway?.stop()]);
  await Promise.all([service?.stop(), sink?.stop()]);
});

test.serial('no page opens without a login; a wrong password is refused, the right one opens the overview', async (t) => {
  await page.goto(`${base}/history`);
  t.true(page.url().endsWith('/login'));
  await shot('login');
  t.is(await login('not the password'), 401);
  t.regex(await page.locator('[role=alert]').innerText(), /Wrong user name or password/);
  t.is(await login(), 303);
  t.is(await page.locator('h1').innerText(), 'Overview');
  await consoleProcess.waitForLog('the login', (line) => line.event === 'console.login' && line.user === USER);
});

test.serial('the overview chart holds the messages sent, and the history shows each with its verdict', async (t) => {
  await send(['--header', 'Subject: plain hello', '--body', 'Hello Bob, lunch tomorrow?']);
  await send(['--header', 'Subject: plain hello again', '--body', 'And dinner?']);
  await waitFor('both messages in the history', async () => (await historyRows()) >= 2);
  await page.goto(`${base}/`);
  const total = await page.locator('.chart').first().locator('g.bar').evaluateAll((bars) => bars.reduce((sum, bar) => sum + Number(bar.getAttribute('data-total')), 0));
  t.is(total, sent);
  t.regex(await page.locator('#total-24h').innerText(), new RegExp(`^${sent} messages`));
  await page.goto(`${base}/history`);
  const row = page.locator('#history tbody tr', { hasText: 'plain hello again' });
  // Nothing is known about a first message's fingerprints yet.
  t.is(await row.locator('td').nth(6).innerText(), 'unknown');
  await shot('history');
  await row.locator('a').first().click();
  t.regex(await page.locator('#verdict').innerText(), /^unknown/);
  t.true((await page.locator('#fingerprints tbody tr').count()) > 0);
  await shot('message');
});

test.serial('a subject carrying a script is shown as text and runs no script', async (t) => {
  await send(['--header', `Subject: ${SCRIPT_SUBJECT}`, '--body', 'nothing to see']);
  await waitFor('the message in the history', async () => (await historyRows()) >= sent);
  t.is(await page.locator('#history td.subject', { hasText: '<script>' }).first().innerText(), SCRIPT_SUBJECT);
  t.is(await page.evaluate('typeof window.__pwned'), 'undefined');
  t.is(await page.locator('#history script, #history img').count(), 0);
  const csp = (await page.request.get(`${base}/history`)).headers()['content-security-policy'] ?? '';
  t.regex(csp, /default-src 'none'/);
  t.false(/script-src|unsafe-inline/.test(csp), 'no script is allowed at all');
});

test.serial('a quarantined message is previewed with its HTML as inert text, and released from the page it arrives at smtp-sink', async (t) => {
  const hostileHtml = '<html><body><img src="http://127.0.0.1:9/tracker.png"><script>window.__pwned = 3</script><p>Hi</p></body></html>';
  await send(['--header', `Subject: ${RELEASE_MARKER}`, '--attach-type', 'text/plain', '--attach-body', GTUBE, '--attach-type', 'text/html', '--attach-body', hostileHtml]);
  await page.goto(`${base}/quarantine`);
  const row = page.locator('#quarantine tbody tr');
  t.is(await row.count(), 1);
  await row.locator('a').click();
  t.regex(await page.locator('pre.text').innerText(), /GTUBE/);
  // The HTML part is its source as text: no element of it exists, nothing of it ran or was fetched.
  t.regex(await page.locator('pre.html-source').innerText(), /<img src="http:\/\/127\.0\.0\.1:9\/tracker\.png">/);
  t.is(await page.locator('main img, main script').count(), 0);
  t.is(await page.evaluate('typeof window.__pwned'), 'undefined');
  await shot('quarantine-preview');
  await page.goto(`${base}/quarantine`);
  await shot('quarantine');
  const before = new Set(sink.files());
  await row.locator('input[type=checkbox]').check();
  await page.click('button[value=release]');
  t.regex(await page.locator('.notice.ok').innerText(), /Released 1/);
  const arrived = await waitFor('the released message at smtp-sink', () => sink.files().filter((file) => !before.has(file)).find((file) => readFileSync(file, 'utf8').includes(RELEASE_MARKER)));
  t.false(readFileSync(arrived, 'utf8').includes('X-Nimbus-Verdict: spam'));
  await consoleProcess.waitForLog('the release with its user', (line) => line.event === 'console.change' && line.change === 'quarantine.release' && line.user === USER);
});

test.serial('an override made on the Why page changes the next copy\'s verdict', async (t) => {
  const body = `Offer at https://www.${WHY_DOMAIN}/deal today`;
  await send(['--header', 'Subject: first copy', '--body', body]);
  await waitFor('the first copy in the history', async () => (await historyRows()) >= sent);
  t.is(await page.locator('#history tbody tr', { hasText: 'first copy' }).locator('td').nth(6).innerText(), 'unknown');
  await page.goto(`${base}/why`);
  await page.fill('input[name=fp]', `url:domain:${WHY_DOMAIN}`);
  await page.click('form[action="/why"] button');
  await page.selectOption('select[name=verdict]', 'spam');
  await page.fill('input[name=reason]', 'phishing campaign seen by the helpdesk');
  await page.click('form[action="/why/override"] button');
  t.regex(await page.locator('.notice.ok').innerText(), /Overridden as spam/);
  t.regex(await page.locator('#local .audit').innerText(), /console:admin[\s\S]*phishing campaign/);
  await shot('why');
  await send(['--header', 'Subject: second copy', '--body', body]);
  await waitFor('the second copy in the history', async () => (await historyRows()) >= sent);
  t.is(await page.locator('#history tbody tr', { hasText: 'second copy' }).locator('td').nth(6).innerText(), 'spam');
});

test.serial('a POST without the CSRF token gets 403 and changes nothing', async (t) => {
  const response = await page.request.post(`${base}/why/override`, { form: { fp: `url:domain:${WHY_DOMAIN}`, verdict: 'clear', reason: 'forged' }, maxRedirects: 0 });
  t.is(response.status(), 403);
  await page.goto(`${base}/why?fp=url:domain:${WHY_DOMAIN}`);
  t.regex(await page.locator('#local .override').innerText(), /spam/);
  await consoleProcess.waitForLog('the refused POST', (line) => line.event === 'console.csrf_refused');
});

test.serial('the participation page shows the batch uploaded to the reputation service', async (t) => {
  const text = await waitFor('an uploaded batch on the page', async () => {
    await page.goto(`${base}/participation`);
    const batches = page.locator('details.batch pre');
    return (await batches.count()) > 0 ? (await batches.allInnerTexts()).join('\n') : null;
  }, 60_000);
  t.regex(text, /"batchId": "b-/);
  t.regex(text, /"ip:sha256:[0-9a-f]{64}"/);
  t.false(text.includes('alice@example.org'));
  t.is(await page.locator('#mode').innerText(), 'standard');
  // The statement makes the page long: the top shows the state and the batches.
  await shot('participation', false);
  // By now the overview has spam and a convicting fingerprint to show.
  await page.goto(`${base}/`);
  await shot('overview');
});

test.serial('the Keys page adds a service key, shows its token once, and revokes it; the service then refuses it', async (t) => {
  await page.goto(`${base}/keys`);
  await page.selectOption('select[name=role]', 'sensor');
  await page.fill('input[name=label]', 'mx2 <b>gateway</b>');
  await page.click('form[action="/keys"] button');
  const token = (await page.locator('#token').innerText()).trim();
  t.regex(token, /^nmb_[0-9a-f]+_\S+$/);
  const id = token.split('_')[1]!;
  const lookup = () => fetch(`${service.url}/v1/lookup`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ items: ['url:domain:example.org'] }) });
  t.is((await lookup()).status, 200);
  const row = page.locator(`#keys tr[data-id="${id}"]`);
  t.is(await row.locator('td').nth(2).innerText(), 'mx2 <b>gateway</b>');
  await page.goto(`${base}/keys`);
  t.is(await page.locator('#token').count(), 0, 'the token is shown only once');
  await shot('keys');
  await row.locator('button').click();
  t.regex(await page.locator('.notice.ok').innerText(), new RegExp(`Key ${id} revoked`));
  t.regex(await row.locator('td').nth(5).innerText(), /^revoked/);
  await waitFor('the service to refuse the revoked key', async () => (await lookup()).status === 401);
  const self = await fetch(`${service.url}/v1/keys/${adminKey.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${adminKey.token}` } });
  t.is(self.status, 400, 'a key cannot revoke itself');
  await consoleProcess.waitForLog('the revocation with its user', (line) => line.event === 'console.change' && line.change === 'key.revoke' && line.target === id && line.user === USER);
});

test.serial('the session cookie is HttpOnly and SameSite=Strict, and Secure when a TLS proxy on the host says the request came over https', async (t) => {
  const login = (headers: Record<string, string>) =>
    fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams({ user: USER, password: PASSWORD }).toString() });
  const plain = (await login({})).headers.get('set-cookie') ?? '';
  t.regex(plain, /^nimbus_console=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
  const behindTls = (await login({ 'x-forwarded-proto': 'https' })).headers.get('set-cookie') ?? '';
  t.regex(behindTls, /; HttpOnly; SameSite=Strict; Secure$/);
});

test.serial('failed logins from one address are throttled: the sixth attempt gets 429 even with the right password', async (t) => {
  const context = await browser.newContext();
  const fresh = await context.newPage();
  t.teardown(() => context.close());
  const attempt = async (password: string) => {
    const response = await fresh.request.post(`${base}/login`, { form: { user: USER, password }, maxRedirects: 0 });
    return response.status();
  };
  for (let i = 0; i < 5; i++) t.is(await attempt(`wrong ${i}`), 401);
  t.is(await attempt(PASSWORD), 429);
  await consoleProcess.waitForLog('the throttled login', (line) => line.event === 'console.login_throttled');
});

test.serial('the console answers /healthz without a login', async (t) => {
  const response = await fetch(`${base}/healthz`);
  t.is(response.status, 200);
});
