import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, VARIABLES } from '../src/config/index.js';

const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** The variables of the table in src/config/table.ts. */
function configVariables(): Set<string> {
  return new Set(Object.keys(VARIABLES));
}

/** Variables named in the README's Configuration table, `_NET`-style shorthands expanded. */
function readmeVariables(): Set<string> {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1));
  const names = new Set<string>();
  for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
    const cell = row.split('|')[1]!;
    let family = '';
    for (const [, name] of cell.matchAll(/`([A-Z0-9_]+)`/g)) {
      if (name!.startsWith('NIMBUS_')) {
        names.add(name!);
        family = name!.replace(/[A-Z0-9]+$/, '');
      } else if (name!.startsWith('_')) names.add(`${family.replace(/_$/, '')}${name}`);
    }
  }
  return names;
}

function envFileVariables(): Set<string> {
  return new Set([...read('systemd/nimbus.env').matchAll(/^#?(NIMBUS_[A-Z0-9_]+)=/gm)].map((match) => match[1]!));
}

const sorted = (set: Set<string>) => [...set].sort();

test('the README configuration table names exactly the variables the config table names', (t) => {
  t.deepEqual(sorted(readmeVariables()), sorted(configVariables()));
});

test('systemd/nimbus.env shows every variable the config table names, and no other', (t) => {
  t.deepEqual(sorted(envFileVariables()), sorted(configVariables()));
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
  t.deepEqual(sorted(asked), sorted(configVariables()));
});
