/**
 * The registries of log events, error codes and SMTP replies are what the code uses and what
 * docs/reference/ says, name for name (fastify keeps its error codes and their page in step the
 * same way): an event logged but not registered, a code thrown but not documented, a reply in
 * the table but never sent, all fail here.
 */
import test from 'ava';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ERROR_CODES } from '../src/errors.js';
import { SMTP_REPLIES } from '../src/gateway/smtp-replies.js';
import { LOG_EVENTS, LOG_EVENT_NAME } from '../src/log-events.js';
import { ERROR_CODES as HTTP_ERROR_CODES } from '../src/reputation/service/errors.js';

const root = join(import.meta.dirname, '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

function sources(dir = join(root, 'src')): { path: string; text: string }[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [{ path: relative(root, path), text: readFileSync(path, 'utf8') }] : [];
  });
}

/** The first cell (backticked) of every table row under `heading` (up to the next heading of its level or higher). */
function tableNames(page: string, heading?: string): string[] {
  let text = read(page);
  if (heading !== undefined) {
    const start = text.indexOf(`\n${heading}\n`);
    if (start < 0) throw new Error(`${page} has no heading ${heading}`);
    const level = heading.split(' ')[0]!;
    const rest = text.slice(start + heading.length + 2);
    const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
    text = end < 0 ? rest : rest.slice(0, end);
  }
  return [...text.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1]!);
}

/** Every event name a log call in src/ writes, with the method's level. */
function loggedEvents(): { name: string; level: string; path: string }[] {
  const found: { name: string; level: string; path: string }[] = [];
  for (const { path, text } of sources()) {
    for (const call of text.matchAll(/\.(trace|debug|info|warn|error|fatal)\(\s*\{([^{}]*?)\}/gs)) {
      for (const name of call[2]!.matchAll(/'([a-z]+(?:\.[a-z_]+)+)'/g)) if (/event:/.test(call[2]!)) found.push({ name: name[1]!, level: call[1]!, path });
    }
    // Lines built apart from the call (the relay's `gateway.message`, the service's `reputation.request`).
    for (const entry of text.matchAll(/\{ event: '([a-z_.]+)'/g)) found.push({ name: entry[1]!, level: '', path });
  }
  return found;
}

test('every event a log call writes is in the registry, at a registered level, and every registered event is written', (t) => {
  const logged = loggedEvents();
  const registered = new Set(Object.keys(LOG_EVENTS));
  t.deepEqual(logged.filter((event) => !registered.has(event.name)).map((event) => `${event.name} (${event.path})`), []);
  t.deepEqual(logged.filter((event) => event.level !== '' && !LOG_EVENTS[event.name]!.includes(event.level as never)).map((event) => `${event.name} at ${event.level} (${event.path})`), []);
  const written = new Set(logged.map((event) => event.name));
  t.deepEqual([...registered].filter((name) => !written.has(name)), []);
});

test('every event name follows the one convention: the part, then dotted snake_case words', (t) => {
  t.deepEqual(Object.keys(LOG_EVENTS).filter((name) => !LOG_EVENT_NAME.test(name)), []);
});

test('docs/reference/log-events.md lists exactly the registered events, each at its registered levels', (t) => {
  const page = read('docs/reference/log-events.md');
  const rows = [...page.matchAll(/^\| `([a-z_.]+)` \| ([^|]+) \|/gm)].map((match) => ({ name: match[1]!, levels: match[2]! }));
  t.deepEqual(rows.map((row) => row.name).sort(), Object.keys(LOG_EVENTS).sort());
  for (const row of rows) for (const level of LOG_EVENTS[row.name] ?? []) t.true(row.levels.includes(level), `${row.name}: the page says "${row.levels.trim()}", the registry ${level}`);
});

test('docs/reference/errors.md documents exactly the registered error codes, and the service\'s HTTP error codes', (t) => {
  const page = 'docs/reference/errors.md';
  const documented = [...tableNames(page, '## Error codes'), ...tableNames(page, '## Reputation service client errors')];
  t.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
  const http = [...read(page).matchAll(/^\| \d{3} \| `([A-Z_]+)` \|/gm)].map((match) => match[1]!);
  t.deepEqual([...new Set(http)].sort(), Object.values(HTTP_ERROR_CODES).sort());
});

test('docs/reference/smtp-replies.md lists every reply of the table as it is sent, and every reply of the table is sent', (t) => {
  const page = read('docs/reference/smtp-replies.md');
  const rows = [...page.matchAll(/^\| `([A-Z_]+)` \| `([^`]+)` \|/gm)].map((match) => ({ name: match[1]!, reply: match[2]! }));
  t.deepEqual(rows.map((row) => row.name).sort(), Object.keys(SMTP_REPLIES).sort());
  for (const row of rows) {
    const reply = SMTP_REPLIES[row.name as keyof typeof SMTP_REPLIES];
    t.true(row.reply.startsWith(`${reply.code} ${reply.enhanced} ${reply.text}`), `${row.name}: the page says ${row.reply}`);
  }
  const used = sources().filter((file) => !file.path.endsWith('smtp-replies.ts')).map((file) => file.text).join('\n');
  t.deepEqual(Object.keys(SMTP_REPLIES).filter((name) => !used.includes(`SMTP_REPLIES.${name}`)), []);
});
