/**
 * A throwaway Postfix instance for integration tests, and a Nimbus gateway run as a real process
 * next to it.
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
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NOBODY_UID = 65534;
const NOBODY_GID = 65534;
export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

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
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 30_000, describe: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms\n${describe()}`);
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function optionLines(options: Readonly<Record<string, string>>): string {
  return Object.entries(options).map(([key, value]) => `  -o ${key}=${value}`).join('\n');
}

export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  const domain = options.domain ?? 'example.test';
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-postfix-'));
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
  await waitForPort(smtpPort, 30_000, readLog);
  await waitForPort(reinjectPort, 30_000, readLog);

  const maildir = (user: string): Buffer[] => {
    const files: string[] = [];
    for (const sub of ['new', 'cur']) {
      const path = join(mailDir, user, 'Maildir', sub);
      if (existsSync(path)) files.push(...readdirSync(path).map((name) => join(path, name)));
    }
    // Maildir names start with the delivery time in seconds, then a sequence: sort by name.
    return files.sort().map((file) => readFileSync(file));
  };
  const queued = async (): Promise<string[]> => {
    const { stdout } = await run('/usr/sbin/postqueue', ['-c', configDir, '-p']);
    if (/Mail queue is empty/.test(stdout)) return [];
    return [...stdout.matchAll(/^([0-9A-F]{6,})[*!]?\s/gm)].map((match) => match[1]!);
  };
  let stopped = false;
  return {
    dir, configDir, domain, smtpPort, reinjectPort,
    log: readLog,
    queued,
    maildir,
    async waitQueueEmpty(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ids = await queued();
        if (ids.length === 0) return;
        if (Date.now() > deadline) throw new Error(`Postfix queue not empty after ${timeoutMs} ms: ${ids.join(' ')}\n${readLog()}`);
        await sleep(200);
      }
    },
    async waitForMail(user, count, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = maildir(user);
        if (files.length >= count) return files;
        if (Date.now() > deadline) throw new Error(`${user}: ${files.length} of ${count} messages after ${timeoutMs} ms\n${readLog()}`);
        await sleep(200);
      }
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

export interface NimbusProcess {
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything the process printed (pino JSON lines on stdout, anything on stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logLines(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/**
 * `node --import tsx src/cli.ts gateway` as a child process, on `port` (a free loopback port when
 * not given: Postfix's main.cf may need the port before the gateway runs).
 */
export async function startNimbusGateway(env: Record<string, string>, port?: number): Promise<NimbusProcess> {
  port ??= await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-gw-data-'));
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'cli.ts'), 'gateway'], {
    cwd: PROJECT_ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      NIMBUS_LISTEN: `127.0.0.1:${port}`,
      NIMBUS_DATA_DIR: dataDir,
      NIMBUS_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port!, 60_000, () => output),
      exited.then(() => { throw new Error(`nimbus gateway exited at start (code ${child.exitCode}):\n${output}`); }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    port, dataDir, child,
    output: () => output,
    logLines: () => output.split('\n').filter((line) => line.startsWith('{')).flatMap((line) => {
      try { return [JSON.parse(line) as Record<string, unknown>]; } catch { return []; }
    }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface SwaksResult {
  readonly code: number;
  readonly output: string;
}

/** swaks as the sending client; never throws on a refusal, the exit code and transcript say it. */
export async function swaks(args: readonly string[]): Promise<SwaksResult> {
  return run('swaks', [...args], { maxBuffer: 64 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: typeof error.code === 'number' ? error.code : -1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }),
  );
}
