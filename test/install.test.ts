/**
 * The production install docs/admin/operations.md ("Install") gives admins, run for real on a
 * clean directory: `npm pack` on a copy of the checkout (its `prepack` and `prepare` build dist/
 * and pin the tested dependency tree as npm-shrinkwrap.json), then `npm install -g --prefix
 * PREFIX --omit=dev` of the tarball, as into /opt/nimbus. The installed `nimbus` must run from its
 * own tree with production dependencies only: sharp and better-sqlite3 included, Haraka, ava, tsx
 * and typescript not.
 *
 * One test, since the install is the slow part: npm builds better-sqlite3 from source when its
 * prebuilt binary cannot be downloaded (about 3 to 4 minutes on 2 busy cores; seconds with the
 * download). npm takes the packages from its cache first (`--prefer-offline`): CI's `npm ci` has
 * just filled it.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { message as fixtureMessage, picture } from '../fixtures/fingerprint/factory.js';
import { GTUBE } from '../src/scan/gtube.js';
import { PROJECT_ROOT } from './helpers/nimbus.js';
import { testDir } from './helpers/temp.js';

const execFileAsync = promisify(execFile);

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly files: readonly string[];
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
}

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as Manifest;

/** A command to its end; its output, or an error carrying it. */
async function run(file: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Buffer } = {}): Promise<{ stdout: string; stderr: string }> {
  const child = execFileAsync(file, [...args], { cwd: options.cwd, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  if (options.input !== undefined) child.child.stdin?.end(options.input);
  return child;
}

test('npm pack makes a package that installs with production dependencies only, and its nimbus runs: --version, config, and check with sharp and SQLite', async (t) => {
  t.timeout(15 * 60_000);
  const work = testDir(t, 'nimbus-install-');

  // A checkout as an admin's build machine has it: what the package is built from and holds.
  const checkout = join(work, 'checkout');
  const buildInputs = ['package.json', 'package-lock.json', 'tsconfig.json', 'src'];
  for (const entry of [...buildInputs, ...manifest.files.filter((file) => file !== 'dist/' && file !== 'npm-shrinkwrap.json')]) {
    cpSync(join(PROJECT_ROOT, entry), join(checkout, entry), { recursive: true });
  }
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');

  const started = Date.now();
  const packed = await run('npm', ['pack', '--pack-destination', work, '--json'], { cwd: checkout });
  const [tarball] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  const packedFiles = tarball!.files.map((file) => file.path);
  t.true(packedFiles.includes('dist/cli.js') && packedFiles.includes('npm-shrinkwrap.json'), packedFiles.join(' '));
  for (const shipped of ['systemd/nimbus.sysusers', 'systemd/nimbus-gateway.service', 'systemd/nimbus.env', 'docs/admin/operations.md']) t.true(packedFiles.includes(shipped), shipped);
  t.false(packedFiles.some((file) => /^(src|test|bench|fixtures)\//.test(file)), 'no sources, tests or benchmarks');
  t.false(existsSync(join(checkout, 'npm-shrinkwrap.json')), 'postpack removed the shrinkwrap from the checkout');
  const packSeconds = (Date.now() - started) / 1000;

  const prefix = join(work, 'opt-nimbus');
  const installStarted = Date.now();
  await run('npm', ['install', '-g', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(work, tarball!.filename)], { cwd: work });
  t.log(`npm pack ${packSeconds.toFixed(0)} s, npm install ${((Date.now() - installStarted) / 1000).toFixed(0)} s`);

  const installed = join(prefix, 'lib', 'node_modules', manifest.name);
  const nimbus = join(prefix, 'bin', 'nimbus');
  t.is(realpathSync(nimbus), realpathSync(join(installed, 'dist', 'cli.js')), 'bin/nimbus is the CLI the systemd units run');
  const tree = readdirSync(join(installed, 'node_modules'));
  for (const dependency of Object.keys(manifest.dependencies)) t.true(existsSync(join(installed, 'node_modules', dependency)), `${dependency} installed`);
  for (const dependency of Object.keys(manifest.devDependencies)) {
    t.false(existsSync(join(installed, 'node_modules', dependency)) || existsSync(join(prefix, 'lib', 'node_modules', dependency)), `devDependency ${dependency} installed`);
  }
  t.false(tree.includes('@ava') || tree.includes('esbuild'), 'nothing of the dev tools came in through another package');

  // Only what an installed package has: PATH for node, a data dir, nothing of the checkout.
  const env = { PATH: process.env.PATH ?? '', NIMBUS_DATA_DIR: join(work, 'data'), NIMBUS_LOG_LEVEL: 'silent' };
  const version = await run(nimbus, ['--version'], { cwd: work, env });
  t.is(version.stdout, `${manifest.version}\n`);
  const config = await run(nimbus, ['config'], { cwd: work, env });
  t.true(config.stdout.split('\n').includes('NIMBUS_LISTEN=127.0.0.1:2525'), config.stdout);
  const message = fixtureMessage({ parts: [{ type: 'text/plain', content: GTUBE, encoding: '7bit' }, { type: 'image/png', content: await picture(64, 64, 19), filename: 'p.png' }] });
  const checked = await run(nimbus, ['check', '--json'], { cwd: work, env, input: message });
  const result = JSON.parse(checked.stdout) as { verdict: string; fingerprints: string[] };
  t.is(result.verdict, 'spam');
  t.true(result.fingerprints.some((fingerprint) => fingerprint.startsWith('image:')), `sharp hashed the picture: ${result.fingerprints.join(' ')}`);
  t.true(existsSync(join(work, 'data', 'local-reputation.sqlite')), 'check opened the embedded engine (better-sqlite3)');
});
