/**
 * Delivery into a Maildir when there is no next hop (a first run with nothing else installed).
 * The Maildir protocol makes a message appear whole or not at all: write into tmp/, fsync the
 * file, rename into new/, fsync the directory; only then is `250` given.
 */
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';

export class Maildir {
  #root: string;
  #sequence = 0;
  #host: string;

  constructor(root: string) {
    this.#root = root;
    // `/` and `:` cannot appear in a Maildir name (`:` starts the info part).
    this.#host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072') || 'localhost';
    // 0700 directories and 0600 files, as qmail and Dovecot deliver: the mail is for the
    // mailbox's owner, and whoever reads this Maildir runs as Nimbus's user (or gets a group).
    for (const sub of ['tmp', 'new', 'cur']) makePrivateDir(join(root, sub));
  }

  get root(): string {
    return this.#root;
  }

  /** Writes the parts in order; resolves with the file name in new/ once it is durable. */
  async deliver(parts: readonly (Buffer | (() => Readable))[]): Promise<string> {
    const now = Date.now();
    // time.pid_seq.host: unique per process by the sequence, across processes by the pid.
    const name = `${Math.floor(now / 1000)}.${process.pid}_${++this.#sequence}.${this.#host}`;
    const tmpPath = join(this.#root, 'tmp', name);
    const newPath = join(this.#root, 'new', name);
    try {
      const file = createWriteStream(tmpPath, { flags: 'wx', mode: PRIVATE_FILE_MODE });
      await pipeline(async function* () {
        for (const part of parts) {
          if (Buffer.isBuffer(part)) yield part;
          else yield* part();
        }
      }, file);
      const handle = await open(tmpPath, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmpPath, newPath);
      const dir = await open(join(this.#root, 'new'), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (error) {
      await rm(tmpPath, { force: true });
      throw error;
    }
    return name;
  }
}
