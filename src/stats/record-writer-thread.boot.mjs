// Runs record-writer-thread.ts from sources (tests, `npm run bench`): a worker thread does not
// inherit tsx's loader on Node 20, so it registers tsx before importing the thread. Built, the
// gateway starts dist/stats/record-writer-thread.js directly and never loads this file.
import { register } from 'tsx/esm/api';

register();
await import('./record-writer-thread.ts');
