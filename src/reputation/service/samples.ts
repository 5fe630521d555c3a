/**
 * Where the reputation service keeps attachment samples (POST /v1/samples), one interface over
 * the two stores the service runs on:
 * - SQLite: `NIMBUS_DATA_DIR/reputation-samples.sqlite`, beside reputation.sqlite (its own file,
 *   so blobs never sit in the WAL of the hot counter tables);
 * - Redis / Redis Cluster: one hash per sample, `nimbus:sample:<sha256>`, with a TTL.
 * Samples are keyed by the SHA-256 of their bytes: a resend (or the same attachment from another
 * gateway) is stored once. Both stores forget a sample SAMPLE_RETENTION_DAYS after it arrived.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import { openPrivateDatabase } from '../../private-files.js';
import type { Config } from '../../config/index.js';
import type { Client as RedisClient } from '../stores/redis-connection.js';
import { useWal } from '../../sqlite-wal.js';

export const SAMPLE_RETENTION_DAYS = 30;
const RETENTION_MS = SAMPLE_RETENTION_DAYS * 86_400_000;

export interface SampleMeta {
  readonly sha256: string;
  readonly type: string;
  readonly size: number;
  /** The key id that sent it first. */
  readonly reporter: string;
  /** ISO time of arrival. */
  readonly received: string;
}

export interface StoredSample extends SampleMeta {
  readonly content: Buffer;
}

export interface SampleStore {
  /** Stores the sample unless one with its SHA-256 is there; `duplicate` says which. */
  put(sample: StoredSample, now?: number): Promise<{ duplicate: boolean }>;
  get(sha256: string): Promise<StoredSample | null>;
  close(): Promise<void>;
  /** A store behind a connection (Redis): why it cannot serve now, or null (OpenedReputation.unavailable). */
  unavailable?(): string | null;
}

export function sampleStorePath(config: Pick<Config, 'dataDir'>): string {
  return path.join(config.dataDir, 'reputation-samples.sqlite');
}

export class SqliteSampleStore implements SampleStore {
  readonly #db: Database.Database;

  constructor(file: string) {
    this.#db = openPrivateDatabase(file);
    useWal(this.#db);
    this.#db.exec(`CREATE TABLE IF NOT EXISTS samples (
      sha256 TEXT PRIMARY KEY, type TEXT NOT NULL, size INTEGER NOT NULL, reporter TEXT NOT NULL,
      received INTEGER NOT NULL, content BLOB NOT NULL);
      CREATE INDEX IF NOT EXISTS samples_received ON samples(received);`);
  }

  async put(sample: StoredSample, now = Date.now()): Promise<{ duplicate: boolean }> {
    return this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM samples WHERE received < ?').run(now - RETENTION_MS);
      const inserted = this.#db
        .prepare('INSERT OR IGNORE INTO samples (sha256, type, size, reporter, received, content) VALUES (?,?,?,?,?,?)')
        .run(sample.sha256, sample.type, sample.size, sample.reporter, Date.parse(sample.received), sample.content);
      return { duplicate: inserted.changes === 0 };
    }).immediate();
  }

  async get(sha256: string): Promise<StoredSample | null> {
    const row = this.#db.prepare('SELECT sha256, type, size, reporter, received, content FROM samples WHERE sha256 = ? AND received >= ?').get(sha256, Date.now() - RETENTION_MS) as
      | { sha256: string; type: string; size: number; reporter: string; received: number; content: Buffer }
      | undefined;
    return row ? { ...row, received: new Date(row.received).toISOString() } : null;
  }

  async close(): Promise<void> {
    this.#db.close();
  }
}

// One key, so one slot in Cluster too: stored only when absent, with its TTL, atomically.
// KEYS[1] the sample hash. ARGV: ttl ms, type, size, reporter, received, content. Returns 1 when stored.
const PUT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'type', ARGV[2], 'size', ARGV[3], 'reporter', ARGV[4], 'received', ARGV[5], 'content', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;

export class RedisSampleStore implements SampleStore {
  readonly #r: RedisClient;
  readonly #prefix: string;
  readonly #unavailable: () => string | null;

  constructor(client: RedisClient, prefix = 'nimbus:', unavailable: () => string | null = () => null) {
    this.#r = client;
    this.#prefix = `${prefix}sample:`;
    this.#unavailable = unavailable;
  }

  unavailable(): string | null {
    return this.#unavailable();
  }

  async put(sample: StoredSample): Promise<{ duplicate: boolean }> {
    const stored = await this.#r.eval(PUT, 1, `${this.#prefix}${sample.sha256}`, String(RETENTION_MS), sample.type, String(sample.size), sample.reporter, sample.received, sample.content);
    return { duplicate: Number(stored) !== 1 };
  }

  async get(sha256: string): Promise<StoredSample | null> {
    const key = `${this.#prefix}${sha256}`;
    const [fields, content] = await Promise.all([this.#r.hmget(key, 'type', 'size', 'reporter', 'received'), this.#r.hgetBuffer(key, 'content')]);
    const [type, size, reporter, received] = fields;
    if (content === null || type == null || size == null || reporter == null || received == null) return null;
    return { sha256, type, size: Number(size), reporter, received, content };
  }

  async close(): Promise<void> {
    if (this.#r.status !== 'end') await this.#r.quit().catch(() => this.#r.disconnect());
  }
}

/** The sample store beside the configured reputation store. */
export async function openSampleStore(config: Pick<Config, 'store' | 'dataDir' | 'redisUrls'>): Promise<SampleStore> {
  if (config.store === 'sqlite') return new SqliteSampleStore(sampleStorePath(config));
  // Loaded only for Redis: ioredis alone is ~28 MB of RSS that a service on SQLite does not need.
  const { connectRedis, watchRedis } = await import('../stores/redis-connection.js');
  const client = await connectRedis(config.redisUrls);
  return new RedisSampleStore(client, 'nimbus:', watchRedis(client));
}
