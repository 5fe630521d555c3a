/**
 * The table in src/config/table.ts is the one place a variable is defined: the admin's page
 * (docs/admin/configuration.md) is generated from it, the env example names the same variables,
 * and the loader asks the environment for nothing else.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configurationPage, loadConfig, PARTS, VARIABLES, type Variable } from '../src/config/index.js';

const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const sorted = (names: Iterable<string>) => [...names].sort();
const tableNames = () => Object.keys(VARIABLES);

test('docs/admin/configuration.md is the page the table generates (run npm run docs:config after editing the table)', (t) => {
  t.is(read('docs/admin/configuration.md'), configurationPage());
});

test('the configuration page has one row per variable of the table, under its part, and says it is generated', (t) => {
  const page = configurationPage();
  t.regex(page.split('\n').slice(0, 5).join('\n'), /Generated from `src\/config\/table\.ts`.*do not edit/s);
  const rows: [string, string][] = [];
  let heading = '';
  for (const line of page.split('\n')) {
    if (line.startsWith('## ')) heading = line.slice(3);
    const row = /^\| `(NIMBUS_[A-Z0-9_]+)` \|/.exec(line);
    if (row) rows.push([row[1]!, heading]);
  }
  t.deepEqual(
    rows,
    (Object.entries(VARIABLES) as [string, Variable<unknown>][]).map(([name, variable]) => [name, PARTS[variable.part]]),
  );
});

test('systemd/nimbus.env shows every variable of the table, and no other', (t) => {
  const inExample = [...read('systemd/nimbus.env').matchAll(/^#?(NIMBUS_[A-Z0-9_]+)=/gm)].map((match) => match[1]!);
  t.deepEqual(sorted(new Set(inExample)), sorted(tableNames()));
});

test('the loader reads exactly the variables of the table, and no other', (t) => {
  const asked = new Set<string>();
  const env = new Proxy({} as Record<string, string | undefined>, {
    get: (_target, name) => {
      if (typeof name === 'string') asked.add(name);
      return undefined;
    },
  });
  loadConfig(env);
  t.deepEqual(sorted(asked), sorted(tableNames()));
});

test('every default in the table is a valid value of its own variable', (t) => {
  for (const [name, variable] of Object.entries(VARIABLES) as [string, Variable<unknown>][]) {
    const text = typeof variable.default === 'function' ? variable.default() : variable.default;
    t.true(variable.parser.parse(text).ok, `${name}=${JSON.stringify(text)}`);
  }
});

test('every NIMBUS_DNS_LISTS line docs/admin/dns-lists.md and systemd/nimbus.env offer to copy is a valid value', (t) => {
  const lines = [...read('docs/admin/dns-lists.md').matchAll(/^NIMBUS_DNS_LISTS=(.+)$/gm), ...read('systemd/nimbus.env').matchAll(/^#NIMBUS_DNS_LISTS=(.+)$/gm)]
    .map((match) => match[1]!)
    // The syntax line itself (`name:zone:kind[:codes][:weight], …`) is no value.
    .filter((line) => !line.includes('['));
  t.true(lines.length >= 2);
  for (const line of lines) {
    const lists = loadConfig({ NIMBUS_DNS_LISTS: line }).dnsLists;
    t.true(lists.length > 0 && lists.every((list) => list.weight > 0), line);
  }
});
