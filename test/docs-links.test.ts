/**
 * The documentation's relative links point to files that exist: README.md, BENCHMARKS.md and
 * every page under docs/. A page moved or renamed without its links fixed fails here. Links to
 * other sites and anchors within a page are not checked; for `page.md#section` the page is.
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');

function markdownFiles(): string[] {
  const docs = join(root, 'docs');
  const pages = existsSync(docs)
    ? readdirSync(docs, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.md')).map((name) => join(docs, name))
    : [];
  return [join(root, 'README.md'), join(root, 'BENCHMARKS.md'), ...pages];
}

/** Link targets of a Markdown text, code blocks and code spans left out (they hold no links). */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`+[^`\n]*`+/g, '');
  const inline = [...prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]!);
  const definitions = [...prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((match) => match[1]!);
  return [...inline, ...definitions];
}

/** A target that names a file in this repository (not another site, not an anchor of this page). */
function isLocal(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#') && !target.startsWith('//');
}

test('every relative link in README.md, BENCHMARKS.md and docs/ points to a file or folder that exists', (t) => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of markdownFiles()) {
    for (const target of linkTargets(readFileSync(file, 'utf8')).filter(isLocal)) {
      checked++;
      const path = decodeURIComponent(target.split('#')[0]!.split('?')[0]!);
      const resolved = path.startsWith('/') ? join(root, path) : join(dirname(file), path);
      if (!existsSync(resolved)) broken.push(`${relative(root, file)}: ${target}`);
    }
  }
  t.deepEqual(broken, []);
  // The house has links to check: a parser that finds none would make this test pass on anything.
  t.true(checked > 50, `only ${checked} relative links found`);
});

test('the link parser finds inline links, images and reference definitions, and ignores code', (t) => {
  const text = [
    'See [the guide](docs/admin/postfix.md#in-front-of-the-mx) and ![plot](bench/plot.png "title").',
    '[ref]: ../BENCHMARKS.md',
    'Not a link: `[x](nowhere.md)`.',
    '```',
    '[y](also-nowhere.md)',
    '```',
    '[site](https://example.org/page)',
  ].join('\n');
  t.deepEqual(linkTargets(text), ['docs/admin/postfix.md#in-front-of-the-mx', 'bench/plot.png', 'https://example.org/page', '../BENCHMARKS.md']);
});
