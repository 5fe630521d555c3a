/**
 * `nimbus check [--json] [FILE.eml…]`: the fingerprints, lookups and verdict of each message, as
 * the gateway would judge it with the same configuration (embedded engine, and the service when
 * participating). Reads stdin when no file is named. A file whose first line starts with `From `
 * is an mbox: every message in it is checked.
 *
 * Computing (`checkMessages`) is kept apart from printing (`formatTable`, `formatJson`).
 */
import { readFile } from 'node:fs/promises';
import { loadConfig } from '../config.js';
import { fingerprintMessage, type MessageFingerprints } from '../fingerprint/index.js';
import type { Fingerprint } from '../fingerprint/types.js';
import { GTUBE } from '../gateway/default-inspector.js';
import { createLogger } from '../log.js';
import { formatReportPart, judge } from '../verdict/judge.js';
import { openCommandReputation } from '../verdict/runtime.js';

export const EXIT_USAGE = 64;
export const EXIT_NOINPUT = 66;

export interface CheckResult extends MessageFingerprints {
  /** File name, `-` for stdin; `name#N` for the N-th message of an mbox. */
  readonly file: string;
  readonly verdict: 'spam' | 'bulk' | 'ham' | 'unknown';
  readonly score: number;
  readonly report: string[];
}

/**
 * Splits an mbox: a message starts at a `From ADDR DATE` line after an empty line (body lines
 * starting with `From ` are `>From ` in a well-formed mbox; the empty line and the date guard
 * against unescaped ones). A file not starting with `From ` is one message.
 */
export function splitMessages(raw: Buffer): Buffer[] {
  if (raw.subarray(0, 5).toString('latin1') !== 'From ') return [raw];
  const text = raw.toString('latin1');
  const starts = [0];
  for (const match of text.matchAll(/\r?\n\r?\n(From \S+[ \t][^\r\n]*\d[^\r\n]*)/g)) starts.push(match.index + match[0].length - match[1]!.length);
  return starts.map((start, i) => Buffer.from(text.slice(start, starts[i + 1] ?? text.length), 'latin1'));
}

/** Turns fingerprints into a verdict; without one, every message is `unknown` with score 0. */
export type Judge = (fingerprints: readonly Fingerprint[], gtube: boolean) => Promise<Pick<CheckResult, 'verdict' | 'score' | 'report'>>;

/** Fingerprints (and, given a judge, the verdict) of every message of one input. */
export async function checkMessages(file: string, raw: Buffer, judgeMessage?: Judge): Promise<CheckResult[]> {
  const messages = splitMessages(raw);
  const results: CheckResult[] = [];
  for (const [index, message] of messages.entries()) {
    const fingerprints = await fingerprintMessage(message, {});
    const judged = judgeMessage ? await judgeMessage(fingerprints.fingerprints, message.includes(GTUBE)) : { verdict: 'unknown' as const, score: 0, report: [] };
    results.push({ file: messages.length > 1 ? `${file}#${index + 1}` : file, ...fingerprints, ...judged });
  }
  return results;
}

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
  const judgeMessage: Judge = async (fingerprints, gtube) => {
    const { scored, parts } = await judge(reputation.lookups, config, fingerprints, gtube);
    return { verdict: scored.verdict, score: scored.score, report: parts.map(formatReportPart) };
  };
  try {
    return await checkFiles(files, json, judgeMessage);
  } finally {
    await reputation.close();
  }
}

async function checkFiles(files: readonly string[], json: boolean, judgeMessage: Judge): Promise<number> {
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
    for (const result of await checkMessages(file, raw, judgeMessage)) process.stdout.write(json ? `${formatJson(result)}\n` : `${formatTable(result)}\n`);
  }
  return status;
}
