/**
 * The env file `nimbus setup` reads its defaults from and writes: systemd EnvironmentFile syntax,
 * each variable under a comment (its one-line doc from the config table), written whole or not
 * at all (a temp file in the same directory, fsynced, renamed over the old one, the directory
 * fsynced), so a gateway reloading on SIGHUP never reads half a file.
 *
 * Mode: it may hold NIMBUS_REPUTATION_KEY, so no one but root and the gateway may read it. Run
 * as root on a host with a `nimbus` group (systemd/nimbus.sysusers), it is 0640 root:nimbus:
 * the units' processes run as nimbus and read it again on SIGHUP. Otherwise it is 0600, its
 * owner's alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readEnvFile, VARIABLES, type Variable } from '../config/index.js';
import { WAY_NAMES, type Way } from './ways.js';

export const DEFAULT_ENV_FILE = '/etc/nimbus/nimbus.env';
/** The comment that records the way Nimbus is plugged in (no variable holds it). */
const WAY_MARK = '# nimbus setup --plug-in ';

export interface CurrentFile {
  /** The file's variables, as written. */
  readonly values: Readonly<Record<string, string>>;
  /** The way recorded by an earlier `nimbus setup`, if any. */
  readonly way: Way | null;
}

/** What is in the env file now; nothing when it does not exist yet. */
export function readCurrent(path: string): CurrentFile {
  if (!existsSync(path)) return { values: {}, way: null };
  const mark = readFileSync(path, 'utf8').split(/\r?\n/).find((line) => line.startsWith(WAY_MARK));
  const way = mark?.slice(WAY_MARK.length).trim();
  return { values: readEnvFile(path), way: (WAY_NAMES as readonly string[]).includes(way ?? '') ? (way as Way) : null };
}

/** A variable of the table by name, if this version has it. */
export function variableNamed(name: string): Variable<unknown> | undefined {
  return (VARIABLES as Readonly<Record<string, Variable<unknown>>>)[name];
}

/** `NAME=value` as readEnvFile and systemd read it back: a value they would trim or unquote is quoted. */
function line(name: string, value: string): string {
  return `${name}=${/^[\s"']|\s$/.test(value) ? `"${value}"` : value}`;
}

/** The doc of a variable as a comment: the table's one line, without markdown. */
function comment(name: string, fallback: string | undefined): string {
  const unknown = name.startsWith('NIMBUS_') ? 'not a variable this version of Nimbus knows; kept as it was' : 'kept as it was';
  const doc = variableNamed(name)?.doc ?? fallback ?? unknown;
  return `# ${doc.replaceAll('`', '')}`;
}

export interface EnvFileContent {
  readonly path: string;
  readonly way: Way;
  /** The answered variables, in the order asked; `doc` stands in for a variable the table lacks. */
  readonly answers: readonly { readonly name: string; readonly value: string; readonly doc?: string }[];
  /** Variables of the previous file that were not asked about, kept as they were. */
  readonly kept: Readonly<Record<string, string>>;
  readonly now: Date;
}

export function renderEnvFile(content: EnvFileContent): string {
  const head = [
    `# ${content.path}: written by \`nimbus setup\` on ${content.now.toISOString()}. Run it again to change`,
    '# the answers (they are its defaults then); variables it does not ask about are kept, and any',
    '# variable may be added by hand: docs/admin/configuration.md lists them all, `nimbus config`',
    '# prints what is in effect. systemd EnvironmentFile syntax: KEY=VALUE, one per line.',
    `${WAY_MARK}${content.way}`,
  ];
  const answered = content.answers.flatMap(({ name, value, doc }) => ['', comment(name, doc), line(name, value)]);
  const keptNames = Object.keys(content.kept);
  const kept = keptNames.length === 0 ? [] : ['', '# ---------------------------------------------------------------- kept from the previous file', ...keptNames.flatMap((name) => [comment(name, undefined), line(name, content.kept[name]!)])];
  return `${[...head, ...answered, ...kept].join('\n')}\n`;
}

/** The gid of the `nimbus` group in `groupFile`, or null when there is none. */
export function nimbusGroupId(groupFile = '/etc/group'): number | null {
  if (!existsSync(groupFile)) return null;
  for (const entry of readFileSync(groupFile, 'utf8').split('\n')) {
    const [name, , gid] = entry.split(':');
    if (name === 'nimbus' && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}

/**
 * Writes `text` to `path` whole or not at all. With `gid`, the file is 0640 and of that group;
 * without, 0600. Resolves with the mode written.
 */
export async function writeEnvFile(path: string, text: string, gid: number | null): Promise<number> {
  const mode = gid === null ? 0o600 : 0o640;
  const dir = dirname(path);
  // 0755: the gateway's user must reach the file in it to read it again on SIGHUP.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(text, 'utf8');
      // The umask may have taken bits off at open; the group is set before anyone can read it.
      if (gid !== null) await handle.chown(-1, gid);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
  return mode;
}
