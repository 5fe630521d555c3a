/**
 * `nimbus check [--json] [FILE.eml…]`: the fingerprints, lookups and verdict of each message, as
 * the gateway would judge it with the same configuration (embedded engine, and the service when
 * participating). Reads stdin when no file is named. A file whose first line starts with `From `
 * is an mbox: every message in it is checked.
 *
 * The scan core computes (`checkMessages`, src/scan/offline.ts); this file prints.
 */
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log.js';
import { checkMessages, siteOf, type CheckResult } from '../scan/offline.js';
import { openCommandReputation } from '../scan/runtime.js';
import type { SiteKnowledge } from '../fingerprint/received.js';
import type { MessageScanner } from '../scan/types.js';

export const EXIT_USAGE = 64;
export const EXIT_NOINPUT = 66;

export function formatJson(result: CheckResult): string {
  return JSON.stringify({
    file: result.file,
    fingerprints: result.fingerprints.map((f) => f.text),
    verdict: result.verdict,
    score: result.score,
    report: result.report,
    skips: result.skips,
  });
}

export function formatTable(result: CheckResult): string {
  const rows = result.fingerprints.map((f) => [f.kind, f.algorithm, f.value.length > 64 ? `${f.value.slice(0, 63)}…` : f.value, f.label ?? '']);
  const widths = [4, 9, 5].map((min, col) => Math.max(min, ...rows.map((r) => r[col]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ').trimEnd();
  const out = [`${result.file}: verdict ${result.verdict}, score ${result.score}`, line(['kind', 'algorithm', 'value', 'label']), ...rows.map(line)];
  if (result.report.length > 0) out.push(`report: ${result.report.join(' ')}`);
  for (const skip of result.skips) out.push(`skipped: ${skip.reason}${skip.detail ? ` (${skip.detail})` : ''}`);
  return `${out.join('\n')}\n`;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function run(args: string[]): Promise<number> {
  const json = args.includes('--json');
  const unknown = args.find((a) => a.startsWith('-') && a !== '--json' && a !== '-');
  if (unknown) {
    process.stderr.write(`nimbus check: unknown option ${unknown}\nusage: nimbus check [--json] [FILE.eml…]\n`);
    return EXIT_USAGE;
  }
  const files = args.filter((a) => !a.startsWith('-') || a === '-');
  const config = loadConfig();
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, { service: 'check' });
  const reputation = await openCommandReputation(config, log);
  try {
    return await checkFiles(files, json, reputation.scanner, siteOf(config));
  } finally {
    await reputation.close();
  }
}

async function checkFiles(files: readonly string[], json: boolean, scanner: MessageScanner, site: SiteKnowledge): Promise<number> {
  let status = 0;
  for (const file of files.length === 0 ? ['-'] : files) {
    let raw: Buffer;
    try {
      raw = file === '-' ? await readStdin() : await readFile(file);
    } catch (error) {
      process.stderr.write(`nimbus check: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`);
      status = EXIT_NOINPUT;
      continue;
    }
    for (const result of await checkMessages(file, raw, scanner, site)) process.stdout.write(json ? `${formatJson(result)}\n` : `${formatTable(result)}\n`);
  }
  return status;
}
