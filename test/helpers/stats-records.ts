/** Fixture factories for statistics tests: configs over a temp data dir, and records. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config/index.js';
import { ipFingerprints } from '../../src/fingerprint/ip.js';
import { urlFingerprints } from '../../src/fingerprint/url.js';
import type { StatsInput } from '../../src/stats/index.js';

export function tempDataDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-stats-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function statsConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ NIMBUS_DATA_DIR: dataDir, NIMBUS_LOG_LEVEL: 'silent', ...env });
}

export function participating(dataDir: string, url: string, mode: 'standard' | 'extended' = 'standard', env: Record<string, string> = {}): Config {
  return statsConfig(dataDir, { NIMBUS_PARTICIPATION: mode, NIMBUS_ACCEPT_STATEMENT: 'yes', NIMBUS_REPUTATION_URL: url, NIMBUS_REPUTATION_KEY: 'sensor-key', ...env });
}

/** A record built with the real fingerprint functions; its URL carries an address and a token. */
export function sampleInput(i: number, overrides: Partial<StatsInput> = {}): StatsInput {
  const ip = `203.0.113.${i % 250}`;
  const urls = [`https://shop.example.biz/track?u=alice${i}%40example.org&t=secret${i}`];
  return {
    clientIp: ip,
    helo: `mail${i}.example.net`,
    fingerprints: [...ipFingerprints(ip), ...urlFingerprints(urls)],
    verdict: i % 2 === 0 ? 'spam' : 'ham',
    score: i % 2 === 0 ? 12 : 0.5,
    action: i % 2 === 0 ? 'tag' : 'deliver',
    size: 1000 + i,
    nextHop: { code: 250, text: '2.0.0 Ok: queued' },
    urls,
    attachments: [{ sha256: 'e5'.repeat(32), type: 'application/pdf', size: 2048 }],
    ...overrides,
  };
}
