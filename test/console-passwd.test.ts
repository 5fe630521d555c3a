/**
 * `nimbus console passwd USER` without a terminal: the password twice on stdin, only a scrypt
 * hash kept, in a file only Nimbus's user reads; nothing written when the entries differ or the
 * password is too short.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import test from 'ava';
import { ConsoleUsers, usersPath } from '../src/console/users.js';
import { runNimbus } from './helpers/nimbus.js';
import { testDir } from './helpers/temp.js';

test('the password given twice on stdin is stored as a scrypt hash in a 0600 file, and verifies', async (t) => {
  const dir = testDir(t);
  const result = await runNimbus(['console', 'passwd', 'alice'], { NIMBUS_DATA_DIR: dir }, { input: 'a long enough secret\na long enough secret\n' });
  t.is(result.code, 0, result.stderr);
  const file = usersPath(dir);
  t.is(statSync(file).mode & 0o777, 0o600);
  t.false(readFileSync(file, 'utf8').includes('a long enough secret'));
  const users = new ConsoleUsers(dir);
  t.true(await users.verify('alice', 'a long enough secret'));
  t.false(await users.verify('alice', 'a long enough secreT'));
  t.false(await users.verify('bob', 'a long enough secret'));
});

test('entries that differ, or a short password, are refused and nothing is written', async (t) => {
  const dir = testDir(t);
  const differ = await runNimbus(['console', 'passwd', 'alice'], { NIMBUS_DATA_DIR: dir }, { input: 'a long enough secret\na long enough secreT\n' });
  t.is(differ.code, 1);
  t.regex(differ.stderr, /differ.*CONSOLE_WEAK_PASSWORD/);
  const short = await runNimbus(['console', 'passwd', 'alice'], { NIMBUS_DATA_DIR: dir }, { input: 'short\nshort\n' });
  t.is(short.code, 1);
  t.regex(short.stderr, /at least 10 characters/);
  t.false(existsSync(usersPath(dir)));
});
