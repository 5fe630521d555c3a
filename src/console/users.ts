/**
 * Console logins: user names with scrypt password hashes in NIMBUS_DATA_DIR/console-users.json
 * (0600, written whole and renamed into place). Written by `nimbus console passwd`, read by the
 * console at each login, so a new or changed password applies without a restart.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NimbusError } from '../errors.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';

/** scrypt's recommended interactive-login cost (N=2^15, r=8, p=1): about 50 ms and 32 MB per check. */
const COST = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
const KEY_LENGTH = 64;
const SALT_BYTES = 16;
export const USER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const MIN_PASSWORD_LENGTH = 10;

interface StoredUser {
  readonly salt: string;
  readonly hash: string;
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly changed: string;
}

function scrypt(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCallback(password, salt, KEY_LENGTH, options, (error, key) => (error ? reject(error) : resolve(key))));
}

export function usersPath(dataDir: string): string {
  return join(dataDir, 'console-users.json');
}

export class ConsoleUsers {
  readonly #path: string;
  readonly #dataDir: string;

  constructor(dataDir: string) {
    this.#dataDir = dataDir;
    this.#path = usersPath(dataDir);
  }

  #read(): Record<string, StoredUser> {
    try {
      return JSON.parse(readFileSync(this.#path, 'utf8')) as Record<string, StoredUser>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new NimbusError('CONSOLE_USERS_UNREADABLE', `${this.#path} cannot be read (${(error as Error).message}); set passwords again with \`nimbus console passwd USER\``);
    }
  }

  names(): string[] {
    return Object.keys(this.#read()).sort();
  }

  async setPassword(user: string, password: string): Promise<void> {
    if (!USER_NAME.test(user)) throw new NimbusError('CONSOLE_BAD_USER', `user name ${JSON.stringify(user)}: expected 1 to 64 letters, digits, dots, dashes or underscores`);
    if (password.length < MIN_PASSWORD_LENGTH) throw new NimbusError('CONSOLE_WEAK_PASSWORD', `the password must have at least ${MIN_PASSWORD_LENGTH} characters`);
    const salt = randomBytes(SALT_BYTES);
    const hash = await scrypt(password, salt, COST);
    const users = this.#read();
    users[user] = { salt: salt.toString('base64'), hash: hash.toString('base64'), N: COST.N, r: COST.r, p: COST.p, changed: new Date().toISOString() };
    makePrivateDir(this.#dataDir);
    const temporary = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(users, null, 2)}\n`, { mode: PRIVATE_FILE_MODE });
    renameSync(temporary, this.#path);
  }

  /** True when `password` is the user's; an unknown user costs the same time as a known one. */
  async verify(user: string, password: string): Promise<boolean> {
    const stored = this.#read()[user];
    const salt = stored ? Buffer.from(stored.salt, 'base64') : randomBytes(SALT_BYTES);
    const options = stored ? { N: stored.N, r: stored.r, p: stored.p, maxmem: COST.maxmem } : COST;
    const hash = await scrypt(password, salt, options);
    return stored !== undefined && timingSafeEqual(hash, Buffer.from(stored.hash, 'base64'));
  }
}
