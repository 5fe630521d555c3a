/**
 * Durable statistics records without blocking the event loop. With synchronous=FULL every commit
 * waits for fsync; on the gateway's own thread that stalled every session of the process for the
 * length of the sync (the relay benchmark's profile: 12–22% of a worker's time). A worker thread
 * commits instead, grouping what arrives meanwhile, and `write()` resolves only after the commit
 * that holds the record: the message still counts as processed only once its record is on disk.
 */
import { Worker } from 'node:worker_threads';
import { NimbusError } from '../errors.js';
import type { StoreOptions } from './store.js';
import { toStatsRow, type StatsRow } from './store-row.js';
import type { StatsInput } from './types.js';

export type WriterRequest =
  | { readonly type: 'record'; readonly seq: number; readonly row: StatsRow }
  | { readonly type: 'bounds'; readonly options: StoreOptions }
  | { readonly type: 'close' };

export type WriterReply =
  | { readonly type: 'written'; readonly results: readonly { seq: number; id: string; dropped: number }[] }
  | { readonly type: 'failed'; readonly seqs: readonly number[]; readonly error: string }
  | { readonly type: 'closed' };

interface Waiter {
  resolve(result: { id: string; dropped: number }): void;
  reject(error: Error): void;
}

/**
 * Built, the thread is record-writer-thread.js beside this file. Run from sources under tsx
 * (tests, `npm run bench`), it is a .ts file that a worker thread cannot load by itself on Node
 * 20: record-writer-thread.boot.mjs registers tsx first, then imports it.
 */
function startThread(options: StoreOptions): Worker {
  const thread = import.meta.url.endsWith('.ts') ? new URL('./record-writer-thread.boot.mjs', import.meta.url) : new URL('./record-writer-thread.js', import.meta.url);
  return new Worker(thread, { workerData: options });
}

export class RecordWriter {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, Waiter>();
  #nextSeq = 1;
  #failure: Error | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: StoreOptions) {
    this.#worker = startThread(options);
    this.#worker.on('message', (reply: WriterReply) => this.#settle(reply));
    this.#worker.on('error', (error) => this.#fail(new NimbusError('STATS_WRITER_FAILED', `statistics writer thread failed: ${error.message}`)));
    this.#worker.on('exit', (code) => this.#fail(new NimbusError('STATS_WRITER_FAILED', `statistics writer thread exited (code ${code})`)));
  }

  /** Resolves once the record is committed (stats and outbox), with its id and the outbox drops. */
  write(input: StatsInput, gatheredOff: boolean): Promise<{ id: string; dropped: number }> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closing) return Promise.reject(new NimbusError('STATS_CLOSED', 'statistics record after close()'));
    const seq = this.#nextSeq++;
    return new Promise((resolve, reject) => {
      // Built here (a throw rejects): the thread gets strings to bind, not objects to clone.
      const row = toStatsRow(input, gatheredOff);
      this.#waiting.set(seq, { resolve, reject });
      this.#worker.postMessage({ type: 'record', seq, row } satisfies WriterRequest);
    });
  }

  setBounds(options: StoreOptions): void {
    if (!this.#failure && !this.#closing) this.#worker.postMessage({ type: 'bounds', options } satisfies WriterRequest);
  }

  /** Commits what is pending, then stops the thread. */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      if (this.#failure) return resolve();
      this.#worker.once('exit', () => resolve());
      this.#worker.postMessage({ type: 'close' } satisfies WriterRequest);
    });
    return this.#closing;
  }

  #settle(reply: WriterReply): void {
    if (reply.type === 'written') {
      for (const { seq, id, dropped } of reply.results) {
        this.#waiting.get(seq)?.resolve({ id, dropped });
        this.#waiting.delete(seq);
      }
    } else if (reply.type === 'failed') {
      for (const seq of reply.seqs) {
        this.#waiting.get(seq)?.reject(new NimbusError('STATS_WRITE_FAILED', `statistics record not stored: ${reply.error}`));
        this.#waiting.delete(seq);
      }
    }
  }

  #fail(error: Error): void {
    if (this.#closing && this.#waiting.size === 0) return;
    this.#failure ??= error;
    for (const waiter of this.#waiting.values()) waiter.reject(this.#failure);
    this.#waiting.clear();
  }
}
