/**
 * The local quarantine (NIMBUS_SPAM_ACTION=quarantine): messages the gateway accepted with `250`
 * but did not relay, kept under `NIMBUS_DATA_DIR/quarantine` until an admin releases or deletes
 * them (`nimbus quarantine …`).
 *
 * Layout, Maildir-like so that an entry appears whole or not at all:
 *
 *   quarantine/tmp/            files being written (never read)
 *   quarantine/messages/ID.eml the message as it would have been relayed (gateway headers included)
 *   quarantine/messages/ID.json metadata: envelope, client, verdict, what the gateway added (QuarantineMeta)
 *   quarantine/messages/ID.lock present while a process releases ID (holds its pid)
 *
 * Both files are written into tmp/, fsynced, renamed into messages/ (the .eml first, the .json
 * last: the metadata is the commit mark) and the directory fsynced, all before `store()` resolves,
 * because the sender gets `250` right after it. An .eml without its .json is the remains of a
 * store that never resolved: the sender got `451` and retries, so it is not listed.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { DIR_MODE, FILE_MODE, syncDirectory, writeDurably } from './files.js';
import { ID_PATTERN, QuarantineError, checkQuarantineId, type QuarantineEntry, type QuarantineInput, type QuarantineMeta, type QuarantineSink, type ReleaseDelivery, type ReleaseResult } from './types.js';

export { QuarantineError, checkQuarantineId, type AddedBytes, type QuarantineEntry, type QuarantineInput, type QuarantineMeta, type QuarantineSink, type ReleaseResult } from './types.js';

const MESSAGES = 'messages';
const TMP = 'tmp';

/** The quarantine inside NIMBUS_DATA_DIR. */
export function quarantineDir(config: Pick<Config, 'dataDir'>): string {
  return join(config.dataDir, 'quarantine');
}

export class Quarantine implements QuarantineSink {
  #root: string;

  /**
   * Creates nothing on disk: directories are made by the first store(), so an admin who runs
   * `nimbus quarantine list` as root does not leave a root-owned directory the gateway cannot use.
   */
  constructor(root: string) {
    this.#root = root;
  }

  get root(): string {
    return this.#root;
  }

  /**
   * Stores the message durably and resolves with its id. `info` is the inspection's verdict when
   * the caller has it; otherwise the gateway's own X-Nimbus-Verdict field at the top of `bytes`
   * is read.
   */
  async store(request: QuarantineInput, bytes: Buffer, info?: { verdict: string; score: number }): Promise<string> {
    const messages = join(this.#root, MESSAGES);
    const tmp = join(this.#root, TMP);
    await mkdir(messages, { recursive: true, mode: DIR_MODE });
    await mkdir(tmp, { recursive: true, mode: DIR_MODE });
    const id = newId(new Date(), request.queueId);
    const traps = new Set(request.spamtrapHits.map((address) => address.toLowerCase()));
    const verdict = info ?? verdictFromHeaders(bytes);
    const meta: QuarantineMeta = {
      id,
      time: new Date().toISOString(),
      queueId: request.queueId,
      clientIp: request.clientIp,
      helo: request.clientHelo,
      trustedClient: request.trustedClient,
      mailFrom: request.envelope.mailFrom,
      rcptTo: request.envelope.rcptTo.filter((address) => !traps.has(address.toLowerCase())),
      spamtrapHits: [...request.spamtrapHits],
      size: bytes.length,
      receivedSize: request.size,
      verdict: verdict?.verdict ?? null,
      score: verdict?.score ?? null,
      ...(request.added ? { added: request.added } : {}),
    };
    const files: [string, Buffer][] = [
      [`${id}.eml`, bytes],
      [`${id}.json`, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`, 'utf8')],
    ];
    try {
      for (const [name, content] of files) await writeDurably(join(tmp, name), content);
      for (const [name] of files) await rename(join(tmp, name), join(messages, name));
      await syncDirectory(messages);
    } catch (error) {
      await Promise.all(files.map(([name]) => rm(join(tmp, name), { force: true })));
      await rm(join(messages, `${id}.json`), { force: true });
      await rm(join(messages, `${id}.eml`), { force: true });
      throw error;
    }
    return id;
  }

  /** Every complete entry, newest first. */
  async list(): Promise<QuarantineMeta[]> {
    let names: string[];
    try {
      names = await readdir(join(this.#root, MESSAGES));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const metas: QuarantineMeta[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      if (!ID_PATTERN.test(id)) continue;
      try {
        metas.push(await this.#readMeta(id));
      } catch (error) {
        // Released or deleted by another process between readdir and read.
        if (error instanceof QuarantineError && error.code === 'QUARANTINE_NOT_FOUND') continue;
        throw error;
      }
    }
    // Ids start with the time at millisecond precision in a fixed width: string order is time order.
    return metas.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  async get(id: string): Promise<QuarantineEntry> {
    checkQuarantineId(id);
    const meta = await this.#readMeta(id);
    const path = join(this.#root, MESSAGES, `${id}.eml`);
    try {
      await stat(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw this.#notFound(id);
      throw error;
    }
    return { meta, path };
  }

  /**
   * Hands the entry to `deliver` (src/gateway/release.ts delivers as the relay does) under its
   * lock, and removes it only once that was accepted; when `deliver` throws, the entry stays.
   */
  async release<D extends ReleaseDelivery>(id: string, deliver: (entry: QuarantineEntry) => Promise<D>): Promise<ReleaseResult & D> {
    const entry = await this.get(id);
    const unlock = await this.#lock(id);
    try {
      const delivered = await deliver(entry);
      await this.#remove(id);
      return { id, ...delivered };
    } finally {
      await unlock();
    }
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    const unlock = await this.#lock(id);
    try {
      await this.#remove(id);
    } finally {
      await unlock();
    }
  }

  async #readMeta(id: string): Promise<QuarantineMeta> {
    let text: string;
    try {
      text = await readFile(join(this.#root, MESSAGES, `${id}.json`), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw this.#notFound(id);
      throw error;
    }
    return JSON.parse(text) as QuarantineMeta;
  }

  #notFound(id: string): QuarantineError {
    return new QuarantineError('QUARANTINE_NOT_FOUND', `no quarantined message ${JSON.stringify(id)} in ${this.#root}`);
  }

  /** Metadata first: without it the entry no longer exists, even if removing the .eml fails. */
  async #remove(id: string): Promise<void> {
    const messages = join(this.#root, MESSAGES);
    await rm(join(messages, `${id}.json`), { force: true });
    await rm(join(messages, `${id}.eml`), { force: true });
    await syncDirectory(messages);
  }

  /**
   * One release or delete per entry at a time, across processes: two admins releasing the same id
   * must not deliver it twice. A lock left by a process that no longer runs is taken over.
   */
  async #lock(id: string): Promise<() => Promise<void>> {
    const path = join(this.#root, MESSAGES, `${id}.lock`);
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(path, 'wx', FILE_MODE);
        try {
          await handle.writeFile(`${process.pid}\n`);
        } finally {
          await handle.close();
        }
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
        if (attempt === 0 && Number.isInteger(pid) && pid > 0 && !processRuns(pid)) {
          await rm(path, { force: true });
          continue;
        }
        throw new QuarantineError('QUARANTINE_BUSY', `quarantined message ${id} is being released or deleted by another process${pid > 0 ? ` (pid ${pid})` : ''}`);
      }
    }
    // Gone in the meantime (another process finished with it just before we locked).
    try {
      await stat(join(this.#root, MESSAGES, `${id}.json`));
    } catch {
      await rm(path, { force: true });
      throw this.#notFound(id);
    }
    return async () => {
      await rm(path, { force: true });
    };
  }
}

/** `20250101T120000123Z-QUEUEID` + 4 random hex: fixed-width time first, so ids sort by time. */
function newId(now: Date, queueId: string): string {
  const stamp = now.toISOString().replace(/[-:.]/g, '');
  const queue = queueId.replace(/[^A-Za-z0-9]/g, '').slice(0, 40) || 'Q';
  return `${stamp}-${queue}${randomBytes(2).toString('hex').toUpperCase()}`;
}

/** The gateway's own X-Nimbus-Verdict: the first one in the header block (it prepends it). */
function verdictFromHeaders(bytes: Buffer): { verdict: string; score: number } | null {
  const end = bytes.indexOf('\r\n\r\n');
  const head = bytes.subarray(0, end < 0 ? Math.min(bytes.length, 64 * 1024) : end).toString('latin1');
  const match = /(?:^|\n)X-Nimbus-Verdict:\s*([a-z]+);\s*score=(-?[0-9.]+)/i.exec(head);
  return match ? { verdict: match[1]!.toLowerCase(), score: Number(match[2]) } : null;
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
