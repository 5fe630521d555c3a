/** API keys in Redis: a `P key:<id>` hash per key and the `P keys` set (the secret stored as SHA-256 only). */
import type { KeyRole } from '../api.js';
import type { KeyStore, StoredKey } from '../engine-types.js';
import { DEFAULT_KEY_RATE, formatToken, hashSecret, newKeyId, newSecret } from '../keys.js';
import type { Client } from './redis-connection.js';
import type { RedisKeyNames } from './redis-layout.js';

export class RedisKeyStore implements KeyStore {
  readonly #r: Client;
  readonly #k: RedisKeyNames;

  constructor(client: Client, names: RedisKeyNames) {
    this.#r = client;
    this.#k = names;
  }

  async addKey(role: KeyRole, label: string, rateLimit = DEFAULT_KEY_RATE): Promise<{ key: StoredKey; token: string }> {
    const secret = newSecret();
    for (;;) {
      const id = newKeyId();
      const key: StoredKey = { id, role, label, secretHash: hashSecret(secret), createdAt: new Date().toISOString(), revokedAt: null, rateLimit };
      if ((await this.#r.hsetnx(this.#k.apiKey(id), 'id', id)) === 0) continue;
      await this.#r.hset(this.#k.apiKey(id), 'role', role, 'label', label, 'secretHash', key.secretHash, 'createdAt', key.createdAt, 'rateLimit', String(rateLimit));
      await this.#r.sadd(this.#k.apiKeys, id);
      return { key, token: formatToken(id, secret) };
    }
  }

  async findKey(id: string): Promise<StoredKey | null> {
    const h = await this.#r.hgetall(this.#k.apiKey(id));
    if (h.id === undefined || h.role === undefined) return null;
    return { id, role: h.role as KeyRole, label: h.label ?? '', secretHash: h.secretHash ?? '', createdAt: h.createdAt ?? '', revokedAt: h.revokedAt ?? null, rateLimit: Number(h.rateLimit ?? DEFAULT_KEY_RATE) };
  }

  async listKeys(): Promise<StoredKey[]> {
    const ids = (await this.#r.smembers(this.#k.apiKeys)).sort();
    const keys = await Promise.all(ids.map((id) => this.findKey(id)));
    return keys.filter((k): k is StoredKey => k !== null).sort((a, b) => (a.createdAt + a.id < b.createdAt + b.id ? -1 : 1));
  }

  async revokeKey(id: string): Promise<boolean> {
    if ((await this.findKey(id)) === null) return false;
    await this.#r.hsetnx(this.#k.apiKey(id), 'revokedAt', new Date().toISOString());
    return true;
  }
}
