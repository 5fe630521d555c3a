/**
 * A throwaway Postfix instance for integration tests (the Nimbus gateway next to it is started
 * with helpers/nimbus.ts).
 *
 * How one more Postfix runs beside (or without) the system one, found by trying on Postfix 3.7:
 * - `postfix -c DIR` with our own main.cf and master.cf in DIR. As root no
 *   `alternate_config_directories` entry in /etc/postfix/main.cf is needed (that list only guards
 *   the set-gid commands postqueue/postdrop when run by other users), and no postmulti.
 * - Everything an instance writes is under its temp dir: queue_directory, data_directory, the
 *   Maildir base, and the log. Postfix's daemons log to syslog, which a container usually lacks,
 *   and its commands print errors only when stderr is a tty; so `maillog_file` (with
 *   `maillog_file_prefixes` allowing the temp dir, and the `postlog` service in master.cf) is
 *   what makes failures readable (`instance.log()`).
 * - Every service runs unchrooted (chroot column `n`): a chroot would need copies of
 *   /etc/services, resolv.conf etc. inside each temp queue dir.
 * - Delivery is the virtual(8) agent into `mail/<user>/Maildir/` as uid/gid nobody, from a
 *   texthash map (no postmap step). local(8) would refuse to deliver as root and needs real
 *   accounts. The temp dir is made world-traversable so nobody can reach it.
 * - No DNS anywhere: smtp_dns_support_level=disabled, smtp_host_lookup=native, numeric next hops
 *   in brackets, inet_interfaces and inet_protocols loopback IPv4 only.
 * - Ports: two free loopback ports picked by binding port 0 (a tiny race with other processes is
 *   accepted; the start fails loudly if a port is taken).
 *
 * Services in master.cf:
 * - `127.0.0.1:smtpPort` — the public smtpd clients talk to, with `publicOptions` as `-o`s.
 * - `127.0.0.1:reinjectPort` — the after-filter smtpd (content_filter= empty), trusting XFORWARD
 *   from loopback; unknown recipients of the virtual domain are refused here (the default
 *   smtpd_reject_unlisted_recipient=yes), unless `reinjectOptions` says otherwise.
 * - `scan` — an smtp(8) client transport that sends XFORWARD, for `content_filter=scan:…`.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForPort } from './ports.js';
import { tempDir } from './temp.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
const NOBODY_UID = 65534;
const NOBODY_GID = 65534;

export interface PostfixOptions {
  /** The virtual mailbox domain this Postfix delivers for. */
  readonly domain?: string;
  /** Local parts that have a Maildir; any other recipient at `domain` is unknown. */
  readonly mailboxes: readonly string[];
  /** Extra or overriding main.cf settings. */
  readonly main?: Readonly<Record<string, string>>;
  /** `-o` overrides for the public smtpd. */
  readonly publicOptions?: Readonly<Record<string, string>>;
  /** `-o` overrides for the reinjection smtpd. */
  readonly reinjectOptions?: Readonly<Record<string, string>>;
}

export interface PostfixInstance {
  readonly dir: string;
  readonly configDir: string;
  readonly domain: string;
  readonly smtpPort: number;
  readonly reinjectPort: number;
  /** Postfix's own log (maillog_file). */
  log(): string;
  /** Queue IDs of messages still queued (`postqueue -p`), empty when the queue is empty. */
  queued(): Promise<string[]>;
  /** Resolves when `postqueue -p` says the queue is empty; throws with the log after timeoutMs. */
  waitQueueEmpty(timeoutMs?: number): Promise<void>;
  /** Delivered files of a mailbox (Maildir new/ and cur/), oldest first. */
  maildir(user: string): Buffer[];
  /** Polls until the mailbox holds `count` messages; throws with the log after timeoutMs. */
  waitForMail(user: string, count: number, timeoutMs?: number): Promise<Buffer[]>;
  /**
   * Resolves once every SMTP session Postfix's smtpd accepted has ended (as many `disconnect
   * from` as `connect from` lines in its log) and the queue is empty: from then on nothing can be
   * delivered that is not already in a mailbox, so what is absent there stays absent.
   */
  waitSettled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function optionLines(options: Readonly<Record<string, string>>): string {
  return Object.entries(options).map(([key, value]) => `  -o ${key}=${value}`).join('\n');
}

export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  const domain = options.domain ?? 'example.test';
  const dir = tempDir('nimbus-postfix-');
  // virtual(8) delivers as nobody, which must be able to traverse to the Maildir base.
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'spool');
  const dataDir = join(dir, 'data');
  const mailDir = join(dir, 'mail');
  for (const path of [configDir, queueDir, dataDir, mailDir]) mkdirSync(path);
  chownSync(dataDir, uid('postfix'), 0);
  chownSync(mailDir, NOBODY_UID, NOBODY_GID);
  const [smtpPort, reinjectPort] = [await freePort(), await freePort()];

  const main: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: 'postfix.test',
    mydomain: 'postfix.test',
    myorigin: '$myhostname',
    mydestination: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtp_dns_support_level: 'disabled',
    smtp_host_lookup: 'native',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    virtual_mailbox_domains: domain,
    virtual_mailbox_base: mailDir,
    virtual_mailbox_maps: `texthash:${join(configDir, 'vmailbox')}`,
    virtual_uid_maps: `static:${NOBODY_UID}`,
    virtual_gid_maps: `static:${NOBODY_GID}`,
    smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination',
    // Mail to a filter that is down stays queued and is retried soon, not after 5 minutes.
    queue_run_delay: '5s',
    minimal_backoff_time: '5s',
    maximal_backoff_time: '10s',
    ...options.main,
  };
  writeFileSync(join(configDir, 'main.cf'), Object.entries(main).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  writeFileSync(join(configDir, 'vmailbox'), options.mailboxes.map((user) => `${user}@${domain} ${user}/Maildir/`).join('\n') + '\n');

  const reinject = {
    content_filter: '',
    smtpd_authorized_xforward_hosts: '127.0.0.0/8',
    smtpd_client_restrictions: '',
    smtpd_helo_restrictions: '',
    smtpd_sender_restrictions: '',
    smtpd_recipient_restrictions: 'permit_mynetworks,reject',
    mynetworks: '127.0.0.0/8',
    ...options.reinjectOptions,
  };
  const master = `
# service type private unpriv chroot wakeup maxproc command
127.0.0.1:${smtpPort} inet n - n - - smtpd
${optionLines(options.publicOptions ?? {})}
127.0.0.1:${reinjectPort} inet n - n - - smtpd
${optionLines(reinject)}
scan unix - - n - 10 smtp
  -o smtp_send_xforward_command=yes
  -o disable_mime_output_conversion=yes
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`.replace(/\n\n+/g, '\n');
  writeFileSync(join(configDir, 'master.cf'), master);

  const readLog = (): string => {
    const file = join(dir, 'maillog');
    return existsSync(file) ? readFileSync(file, 'utf8') : '(no maillog yet)';
  };
  const postfix = async (command: string): Promise<void> => {
    try {
      await run('/usr/sbin/postfix', ['-c', configDir, command]);
    } catch (error) {
      throw new Error(`postfix -c ${configDir} ${command} failed: ${String(error)}\n${readLog()}`);
    }
  };
  await postfix('check');
  await postfix('start');
  for (const port of [smtpPort, reinjectPort]) {
    await waitForPort(port, 30_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${readLog()}`);
    });
  }

  const maildir = (user: string): Buffer[] => {
    const files: string[] = [];
    for (const sub of ['new', 'cur']) {
      const path = join(mailDir, user, 'Maildir', sub);
      if (existsSync(path)) files.push(...readdirSync(path).map((name) => join(path, name)));
    }
    // Postfix names a delivery `SECONDS.VdevIinodeMmicroseconds.host`: in delivery order by the
    // seconds, then the microseconds (the inode between them is not an order, so the name is not).
    const order = (file: string): [number, number] => {
      const m = /^(\d+)\.[^.]*?M(\d+)/.exec(basename(file));
      return m ? [Number(m[1]), Number(m[2])] : [Number.MAX_SAFE_INTEGER, 0];
    };
    return files
      .map((file) => ({ file, at: order(file) }))
      .sort((a, b) => a.at[0] - b.at[0] || a.at[1] - b.at[1] || (a.file < b.file ? -1 : 1))
      .map(({ file }) => readFileSync(file));
  };
  const queued = async (): Promise<string[]> => {
    const { stdout } = await run('/usr/sbin/postqueue', ['-c', configDir, '-p']);
    if (/Mail queue is empty/.test(stdout)) return [];
    return [...stdout.matchAll(/^([0-9A-F]{6,})[*!]?\s/gm)].map((match) => match[1]!);
  };
  const waitQueueEmpty = async (timeoutMs = 60_000): Promise<void> => {
    let ids: string[] = [];
    await waitFor('an empty Postfix queue', async () => (ids = await queued()).length === 0, timeoutMs).catch((error: Error) => {
      throw new Error(`${error.message}: ${ids.join(' ')}\n${readLog()}`);
    });
  };
  let stopped = false;
  return {
    dir, configDir, domain, smtpPort, reinjectPort,
    log: readLog,
    queued,
    maildir,
    waitQueueEmpty,
    async waitForMail(user, count, timeoutMs = 60_000) {
      return waitFor(`${count} message(s) for ${user}`, () => {
        const files = maildir(user);
        return files.length >= count ? files : undefined;
      }, timeoutMs).catch((error: Error) => {
        throw new Error(`${error.message}, ${maildir(user).length} there\n${readLog()}`);
      });
    },
    async waitSettled(timeoutMs = 60_000) {
      const sessions = (what: string) => readLog().split('\n').filter((line) => /postfix\/smtpd\[\d+\]: /.test(line) && line.includes(`: ${what} from `)).length;
      await waitFor('every smtpd session to end', () => sessions('disconnect') >= sessions('connect'), timeoutMs).catch((error: Error) => {
        throw new Error(`${error.message}\n${readLog()}`);
      });
      await waitQueueEmpty(timeoutMs);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await postfix('stop').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function uid(user: string): number {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user) return Number(fields[2]);
  }
  throw new Error(`no user ${user} in /etc/passwd: is postfix installed?`);
}
