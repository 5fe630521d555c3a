/**
 * Writes a benchmark's figures between its two markers in BENCHMARKS.md, leaving the hand-written
 * text around them as it is. One place for the rule the benches share (learn, console,
 * fingerprints, the day-one evaluation).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** Replaces what lies between `begin` and `end` in `file` with `block`; false (nothing written) when a marker is missing. */
export function writeMarkedBlock(file: string, begin: string, end: string, block: string): boolean {
  const current = readFileSync(file, 'utf8');
  const start = current.indexOf(begin);
  const stop = current.indexOf(end, start);
  if (start < 0 || stop < 0) return false;
  writeFileSync(file, `${current.slice(0, start + begin.length)}\n${block}${current.slice(stop)}`);
  return true;
}
