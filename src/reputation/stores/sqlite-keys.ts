/** API keys in the SQLite store's `api_key` table (the secret stored as SHA-256 only). */
import type Database from 'better-sqlite3';
import type { KeyRole } from '../api.js';
import type { KeyStore, StoredKey } from '../engine-types.js';
import { DEFAULT_KEY_RATE, formatToken, hashSecret, newKeyId, newSecret } from '../keys.js';

interface KeyRow {
  id: string;
  role: KeyRole;
  label: string;
  secret_hash: string;
  created_at: string;
  revoked_at: string | null;
  rate_limit: number;
}

const toKey = (r: KeyRow): StoredKey => ({
  id: r.id,
  role: r.role,
  label: r.label,
  secretHash: r.secret_hash,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  rateLimit: r.rate_limit,
});

export class SqliteKeyStore implements KeyStore {
  readonly #s;

  constructor(db: Database.Database) {
    this.#s = {
      addKey: db.prepare('INSERT INTO api_key (id, role, label, secret_hash, created_at, revoked_at, rate_limit) VALUES (?, ?, ?, ?, ?, NULL, ?)'),
      findKey: db.prepare<[string], KeyRow>('SELECT * FROM api_key WHERE id = ?'),
      listKeys: db.prepare<[], KeyRow>('SELECT * FROM api_key ORDER BY created_at, id'),
      revokeKey: db.prepare('UPDATE api_key SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      keyExists: db.prepare<[string], { id: string }>('SELECT id FROM api_key WHERE id = ?'),
    };
  }

  async addKey(role: KeyRole, label: string, rateLimit = DEFAULT_KEY_RATE): Promise<{ key: StoredKey; token: string }> {
    let id = newKeyId();
    while (this.#s.keyExists.get(id) !== undefined) id = newKeyId();
    const secret = newSecret();
    this.#s.addKey.run(id, role, label, hashSecret(secret), new Date().toISOString(), rateLimit);
    return { key: toKey(this.#s.findKey.get(id)!), token: formatToken(id, secret) };
  }

  async findKey(id: string): Promise<StoredKey | null> {
    const row = this.#s.findKey.get(id);
    return row === undefined ? null : toKey(row);
  }

  async listKeys(): Promise<StoredKey[]> {
    return this.#s.listKeys.all().map(toKey);
  }

  async revokeKey(id: string): Promise<boolean> {
    if (this.#s.findKey.get(id) === undefined) return false;
    this.#s.revokeKey.run(new Date().toISOString(), id);
    return true;
  }
}
