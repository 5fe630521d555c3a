/**
 * The statistics writer thread (see record-writer.ts). It owns a connection of its own and
 * commits every record that arrived while the previous commit was being synced, in one
 * transaction: group commit, so N concurrent messages cost one fsync instead of N, and no fsync
 * ever blocks the gateway's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StatsStore, type StoreOptions } from './store.js';
import type { WriterReply, WriterRequest } from './record-writer.js';

const port = parentPort;
if (!port) throw new Error('record-writer-thread runs only as a worker thread');

const store = new StatsStore(workerData as StoreOptions);
let pending: Extract<WriterRequest, { type: 'record' }>[] = [];
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  let reply: WriterReply;
  try {
    const results = store.insertRows(batch.map(({ row }) => row));
    reply = { type: 'written', results: batch.map(({ seq }, i) => ({ seq, ...results[i]! })) };
  } catch (error) {
    reply = { type: 'failed', seqs: batch.map(({ seq }) => seq), error: error instanceof Error ? error.message : String(error) };
  }
  port!.postMessage(reply);
}

port.on('message', (request: WriterRequest) => {
  switch (request.type) {
    case 'record':
      pending.push(request);
      // Every message already queued on the port is delivered before this runs: they share the commit.
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
      break;
    case 'bounds':
      store.setBounds(request.options);
      break;
    case 'close':
      flush();
      store.close();
      port!.postMessage({ type: 'closed' } satisfies WriterReply);
      port!.close();
      break;
  }
});
