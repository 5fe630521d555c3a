/**
 * `nimbus learn`'s work: every message under the given paths (mail-sources.ts) fingerprinted as
 * a stored message and learnt as the admin's report (admin-reports.ts), in batches of one
 * engine write each. A message already recorded with the label is counted as known and not even
 * parsed, so learning a folder again is quick and changes nothing. What is not mail is named
 * with its reason and skipped; the rest is still learnt.
 *
 * Messages are analysed a few at a time: image decoding runs on libuv's threads (sharp), so
 * while one message's images decode another's MIME is parsed.
 */
import type { FeedbackLabel } from '../reputation/engine-types.js';
import type { AdminReports, AnalysedStored } from './admin-reports.js';
import { listMailFiles, readMailFile, type StoredMessage, type Unreadable } from './mail-sources.js';
import { messageDigest } from './reported-messages.js';

/** Messages per engine write: one transaction each, small enough to show progress often. */
export const LEARN_BATCH = 250;
/** Messages analysed at once (see above); more buys nothing on a few cores. */
export const LEARN_CONCURRENCY = 4;

export interface LearnProgress {
  /** Messages looked at so far (learnt, known or unreadable). */
  readonly messages: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly elapsedMs: number;
}

export interface LearnSummary {
  readonly label: FeedbackLabel;
  /** Messages learnt now (relabelled ones included: recorded before with the other label). */
  readonly learnt: number;
  /** Of those, messages recorded before with the other label (their old evidence withdrawn). */
  readonly relabelled: number;
  /** Recorded with this label already (or twice under the paths): nothing changed. */
  readonly known: number;
  readonly unreadable: readonly Unreadable[];
  readonly elapsedMs: number;
}

export interface LearnOptions {
  readonly onProgress?: (progress: LearnProgress) => void;
  readonly now?: () => number;
}

export async function learnPaths(label: FeedbackLabel, paths: readonly string[], reports: AdminReports, options: LearnOptions = {}): Promise<LearnSummary> {
  const clock = options.now ?? Date.now;
  const started = performance.now();
  const { files, unreadable: unlisted } = await listMailFiles(paths);
  const unreadable: Unreadable[] = [...unlisted];
  const bytesTotal = files.reduce((sum, file) => sum + file.size, 0);
  let bytesDone = 0;
  let messages = unlisted.length;
  let learnt = 0;
  let relabelled = 0;
  let known = 0;
  let batch: AnalysedStored[] = [];
  const progress = (): void => options.onProgress?.({ messages, bytesDone, bytesTotal, elapsedMs: performance.now() - started });

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    // Taken before the write: analyses still running add to the next batch meanwhile.
    const taken = batch;
    batch = [];
    const results = await reports.learn(label, taken, clock());
    for (const result of results) {
      if (result === 'known') known++;
      else learnt++;
      if (result === 'relearnt') relabelled++;
    }
  };

  const analyse = async (message: StoredMessage): Promise<void> => {
    if (reports.known(messageDigest(message.raw), label)) {
      known++;
      return;
    }
    try {
      const found = await reports.analyse(message.raw);
      if (found.empty !== null) unreadable.push({ name: message.name, reason: found.empty });
      else batch.push(found);
    } catch (error) {
      unreadable.push({ name: message.name, reason: error instanceof Error ? error.message : String(error) });
    }
  };

  const inFlight = new Set<Promise<void>>();
  for (const file of files) {
    for (const item of await readMailFile(file)) {
      messages++;
      if (!('raw' in item)) {
        unreadable.push(item);
        continue;
      }
      const running: Promise<void> = analyse(item).finally(() => inFlight.delete(running));
      inFlight.add(running);
      if (inFlight.size >= LEARN_CONCURRENCY) await Promise.race(inFlight);
      if (batch.length >= LEARN_BATCH) await flush();
    }
    bytesDone += file.size;
    progress();
  }
  await Promise.all(inFlight);
  await flush();
  progress();
  return { label, learnt, relabelled, known, unreadable, elapsedMs: performance.now() - started };
}
