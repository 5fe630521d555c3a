/**
 * `npm run bench [-- NAME [ARGS…]]`: runs bench/NAME.ts (fingerprints, reputation, relay, milter, learn, bayes, protection, console), or
 * all of them in turn when no name is given. Each writes its figures to BENCHMARKS.md (bayes only prints them).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const BENCHES = ['fingerprints', 'reputation', 'relay', 'milter', 'learn', 'bayes', 'protection', 'console'];
const here = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<number> {
  const [name, ...args] = process.argv.slice(2);
  const names = name ? [name] : BENCHES;
  for (const bench of names) {
    const file = join(here, `${bench}.ts`);
    if (!existsSync(file)) {
      process.stderr.write(`bench: no benchmark named ${JSON.stringify(bench)} (have: ${BENCHES.join(', ')})\n`);
      return 64;
    }
    const module = (await import(pathToFileURL(file).href)) as { run(args: string[]): Promise<number> };
    const code = await module.run(args);
    if (code !== 0) return code;
  }
  return 0;
}

main().then((code) => { process.exitCode = code; }, (error: unknown) => { console.error(error); process.exitCode = 1; });
