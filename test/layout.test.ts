/**
 * The shape of the house (DESIGN.md, Layout): the scan core knows no front, and every module a
 * file loads is named where the compiler and a reader can see it.
 */
import test from 'ava';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');

function files(dir: string, ends: readonly string[]): { path: string; text: string }[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path, ends);
    return ends.some((end) => name.endsWith(end)) ? [{ path: relative(root, path), text: readFileSync(path, 'utf8') }] : [];
  });
}

test('the scan core imports nothing from a front: no module under src/scan names src/gateway or src/milter', (t) => {
  const offenders = files(join(root, 'src', 'scan'), ['.ts']).filter((file) => /from '\.\.\/(gateway|milter)\//.test(file.text));
  t.deepEqual(offenders.map((file) => file.path), []);
});

test('no module name in src/ is computed: every import() and require() names its module with a string literal', (t) => {
  const computed: string[] = [];
  for (const file of files(join(root, 'src'), ['.ts', '.mjs', '.js'])) {
    for (const call of file.text.matchAll(/\b(import|require)\(\s*([^)\s][^)]*)\)/g)) {
      if (!/^(['"])[^'"]+\1$/.test(call[2]!.trim())) computed.push(`${file.path}: ${call[0]}`);
    }
  }
  t.deepEqual(computed, []);
});
