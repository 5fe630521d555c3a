import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FINGERPRINT_KINDS } from '../src/config/index.js';

const root = join(import.meta.dirname, '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Every NIMBUS_ variable src/config.ts reads (the weight family expanded per kind). */
function configVariables(): Set<string> {
  const source = read('src/config/index.ts');
  // `NIMBUS_WEIGHT_${kind}` is a template, not a variable: the family is expanded below.
  const names = new Set((source.match(/NIMBUS_[A-Z0-9_]+/g) ?? []).filter((name) => !name.endsWith('_')));
  for (const kind of FINGERPRINT_KINDS) names.add(`NIMBUS_WEIGHT_${kind.toUpperCase()}`);
  return names;
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

test('the README configuration table names exactly the variables src/config.ts reads', (t) => {
  t.deepEqual(sorted(readmeVariables()), sorted(configVariables()));
});

test('systemd/nimbus.env shows every variable src/config.ts reads, and no other', (t) => {
  t.deepEqual(sorted(envFileVariables()), sorted(configVariables()));
});
