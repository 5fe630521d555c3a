/**
 * `npm run bench -- console [--rows=N] [--write]`: how fast the console's pages answer with a
 * large message history (default 1,000,000 rows over 30 days, the default retention).
 *
 * - A fresh data dir gets N history rows written through HistoryStore.insertMany in batches (as
 *   the relay's writer does): 4 fingerprints each (ip, net, a link domain out of 5,000, a body),
 *   verdicts ~70 % ham, 20 % spam, 5 % bulk, 5 % unknown; one sender in 10,000 is the one the
 *   sender filter asks for.
 * - Then `nimbus console` runs on it as the systemd unit would (its own process, node + tsx),
 *   a user logs in over HTTP, and each page is fetched 20 times after 2 unmeasured fetches; the
 *   figure is the p50 and the max of the wall time of one GET (request to the last body byte).
 * - Target: every page ≤ 200 ms.
 * - Also the CPU time per history row written (user + system of this process while filling),
 *   which is what the history adds to the relay's CPU per message.
 * --write replaces the marked block of BENCHMARKS.md's Console section.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HistoryStore, type HistoryEntry } from '../src/stats/history-store.js';
import { ConsoleUsers } from '../src/console/users.js';
import { writeMarkedBlock } from './benchmarks-block.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DAY_MS = 86_400_000;
const BATCH = 10_000;
const FETCHES = 20;
const TARGET_MS = 200;
const BEGIN = '<!-- bench console: figures -->';
const END = '<!-- /bench console -->';
const VERDICTS = [...Array(14).fill('ham'), ...Array(4).fill('spam'), 'bulk', 'unknown'] as const;
const hex = (n: number, width = 64) => n.toString(16).padStart(width, '0').slice(-width);

function row(i: number, rows: number, now: number): HistoryEntry {
  const verdict = VERDICTS[i % VERDICTS.length]!;
  const spam = verdict === 'spam';
  const domain = `site${i % 5000}.example`;
  return {
    time: now - 30 * DAY_MS + Math.floor((i / rows) * 30 * DAY_MS),
    queueId: hex(i, 12).toUpperCase(),
    clientIp: `198.51.${(i >> 8) & 255}.${i & 255}`,
    helo: `mx${i % 977}.example.net`,
    mailFrom: i % 10_000 === 0 ? `needle${i}@rare-sender.example` : `user${i % 50_000}@sender${i % 3000}.example`,
    rcptCount: 1 + (i % 3),
    size: 3000 + (i % 40_000),
    verdict,
    score: spam ? 9 : 0,
    action: spam ? 'tag' : 'deliver',
    tests: spam ? ['NIMBUS_URL'] : [],
    fingerprints: [
      { text: `ip:sha256:${hex(i)}`, label: `198.51.${(i >> 8) & 255}.${i & 255}`, verdict: 'unknown', reputation: 0, weight: 3, contribution: 0, complete: true },
      { text: `net:sha256:${hex(i >> 8)}`, verdict: 'unknown', reputation: 0, weight: 2, contribution: 0, complete: true },
      { text: `url:domain:${domain}`, label: domain, verdict: spam ? 'spam' : 'unknown', reputation: spam ? 0.9 : 0, weight: 10, contribution: spam ? 9 : 0, complete: true },
      { text: `body:minhash64:${hex(i * 7919, 256)}`, verdict: 'unknown', reputation: 0, weight: 6, contribution: 0, complete: true },
    ],
    subject: null,
  };
}

async function waitForListening(child: ReturnType<typeof spawn>): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /"event":"console.listening".*?"url":"([^"]+)"/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`nimbus console exited (${code}): ${output}`)));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export async function run(args: string[]): Promise<number> {
  const rows = Number(args.find((arg) => arg.startsWith('--rows='))?.slice('--rows='.length) ?? 1_000_000);
  const write = args.includes('--write');
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-bench-console-'));
  try {
    const now = Date.now();
    const started = Date.now();
    const cpuBefore = process.cpuUsage();
    const store = new HistoryStore(dir);
    for (let at = 0; at < rows; at += BATCH) store.insertMany(Array.from({ length: Math.min(BATCH, rows - at) }, (_, k) => row(at + k, rows, now)));
    const newest = store.list({ limit: 1 })[0]!;
    store.close();
    const fillSeconds = (Date.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    // What the relay's history writer costs per message: building the entry and committing it.
    const writeCpuMicros = (cpu.user + cpu.system) / rows;
    process.stderr.write(`bench console: ${rows} rows written in ${fillSeconds.toFixed(0)} s\n`);
    await new ConsoleUsers(dir).setPassword('bench', 'bench password 123');

    const consoleProcess = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli.ts'), 'console'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', NIMBUS_DATA_DIR: dir, NIMBUS_CONSOLE_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const base = await waitForListening(consoleProcess);
      const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=bench&password=bench+password+123' });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      if (!cookie.startsWith('nimbus_console=')) throw new Error(`login failed: ${login.status}`);
      const pages: [string, string][] = [
        ['overview', '/'],
        ['history, newest 50', '/history'],
        ['history, verdict=spam', '/history?verdict=spam'],
        ['history, one client', `/history?client=${encodeURIComponent(newest.clientIp)}`],
        ['history, one sender domain (1 message in 10,000)', '/history?sender=rare-sender.example'],
        ['history, a past day', `/history?since=${new Date(now - 10 * DAY_MS).toISOString().slice(0, 16)}&until=${new Date(now - 9 * DAY_MS).toISOString().slice(0, 16)}`],
        ['message page', `/history/${newest.id}`],
        ['why, a link domain', '/why?fp=url:domain:site42.example'],
        ['quarantine (empty)', '/quarantine'],
        ['participation', '/participation'],
      ];
      const results: { page: string; p50: number; max: number }[] = [];
      for (const [name, path] of pages) {
        const times: number[] = [];
        for (let i = 0; i < FETCHES + 2; i++) {
          const t0 = performance.now();
          const response = await fetch(`${base}${path}`, { headers: { cookie } });
          await response.text();
          if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
          if (i >= 2) times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        results.push({ page: name, p50: percentile(times, 0.5), max: times[times.length - 1]! });
      }
      const figures = { rows, fillSeconds, writeCpuMicros, load: loadavg().map((l) => l.toFixed(2)).join(' '), cpus: cpus().length, node: process.version, date: new Date().toISOString(), results };
      process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
      if (write) {
        const table = [
          `Command: \`npm run bench -- console --write\`, ${figures.date}, ${figures.cpus} CPUs (shared and loaded: load average ${figures.load} after the run), Node ${figures.node}; ${rows.toLocaleString('en')} history rows.`,
          '',
          '| page | p50 ms | max ms (20 fetches) | target ≤ 200 ms |',
          '|---|---|---|---|',
          ...results.map((r) => `| ${r.page} | ${r.p50.toFixed(0)} | ${r.max.toFixed(0)} | ${r.max <= TARGET_MS ? '**met**' : r.p50 <= TARGET_MS ? 'p50 met, max **missed**' : '**missed**'} |`),
          '',
          `History write, CPU per message (building ${rows.toLocaleString('en')} entries and committing them in batches of ${BATCH.toLocaleString('en')}, one process): ${writeCpuMicros.toFixed(1)} µs.`,
          '',
        ].join('\n');
        if (!writeMarkedBlock(join(ROOT, 'BENCHMARKS.md'), BEGIN, END, table)) {
          process.stderr.write(`bench console: no ${BEGIN} … ${END} block in BENCHMARKS.md, nothing written\n`);
          return 1;
        }
      }
      return 0;
    } finally {
      consoleProcess.kill('SIGTERM');
      await new Promise((resolve) => consoleProcess.once('exit', resolve));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
