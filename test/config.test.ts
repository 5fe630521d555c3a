import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { configLines, ConfigError, inBlockList, loadConfig, loadSettings, parseSize } from '../src/config/index.js';

test('defaults from DESIGN.md apply when no variable is set', (t) => {
  const config = loadConfig({});
  t.deepEqual(config.listen, { host: '127.0.0.1', port: 2525 });
  t.is(config.nextHop, null);
  t.is(config.maxMessageSize, 25 * 1024 * 1024);
  t.is(config.participation, 'off');
  t.is(config.spamAction, 'tag');
  t.is(config.tagScore, 5);
  t.is(config.rejectScore, 15);
  t.is(config.lookupTimeoutMs, 300);
  t.is(config.maxRefusedRecipients, 20);
  t.true(inBlockList(config.trustedBlockList, '127.0.0.1'));
  t.true(inBlockList(config.trustedBlockList, '::1'));
  t.true(inBlockList(config.trustedBlockList, '::ffff:127.0.0.5'));
  t.false(inBlockList(config.trustedBlockList, '192.0.2.1'));
});

test('every wrong variable is named with its value and what is allowed, all at once', (t) => {
  const error = t.throws(
    () => loadConfig({ NIMBUS_TAG_SCORE: 'abc', NIMBUS_SPAM_ACTION: 'bounce', NIMBUS_TRUSTED_NETWORKS: '10.0.0.0/33', NIMBUS_LISTEN: 'nowhere', NIMBUS_IMAGE_HASH_CACHE: '-1' }),
    { instanceOf: ConfigError },
  );
  t.regex(error.message, /NIMBUS_TAG_SCORE="abc": expected a number/);
  t.regex(error.message, /NIMBUS_SPAM_ACTION="bounce": expected one of tag, reject, quarantine, discard/);
  t.regex(error.message, /NIMBUS_TRUSTED_NETWORKS=.*bad entry "10.0.0.0\/33"/);
  t.regex(error.message, /NIMBUS_LISTEN="nowhere": expected host:port/);
  t.regex(error.message, /NIMBUS_IMAGE_HASH_CACHE="-1": expected an integer >= 0/);
});

test('URLs must be absolute with the right scheme and a host; numbers must be finite', (t) => {
  const error = t.throws(
    () => loadConfig({ NIMBUS_REPUTATION_URL: 'ftp://rep.example', NIMBUS_REDIS_URL: 'redis://,http://cache:6379', NIMBUS_TAG_SCORE: 'Infinity' }),
    { instanceOf: ConfigError },
  );
  t.regex(error.message, /NIMBUS_REPUTATION_URL="ftp:\/\/rep.example": expected an http:\/\/ or https:\/\/ URL/);
  t.regex(error.message, /NIMBUS_REDIS_URL=.*expected redis:\/\/host:port/);
  t.regex(error.message, /NIMBUS_TAG_SCORE="Infinity": expected a number/);
  const config = loadConfig({ NIMBUS_REPUTATION_URL: 'https://rep.example:8443/', NIMBUS_REDIS_URL: '10.0.0.1:7000,rediss://cache.example:6380', NIMBUS_TAG_SCORE: ' 4.5 ' });
  t.is(config.reputationUrl, 'https://rep.example:8443');
  t.is(config.tagScore, 4.5);
  t.deepEqual(config.redisUrls, ['redis://10.0.0.1:7000', 'rediss://cache.example:6380']);
});

test('a service URL with user:password@ is refused at start, naming where the key goes and without echoing the password', (t) => {
  const error = t.throws(
    () =>
      loadConfig({
        NIMBUS_REPUTATION_URL: 'http://gw:secret1@rep.example:8787',
        NIMBUS_UPSTREAM_URL: 'https://secret2@upstream.example/',
      }),
    { instanceOf: ConfigError },
  );
  t.regex(error.message, /NIMBUS_REPUTATION_URL="http:\/\/gw:\*\*\*@rep\.example:8787\/": credentials in the URL are not used.*NIMBUS_REPUTATION_KEY/);
  t.regex(error.message, /NIMBUS_UPSTREAM_URL="https:\/\/\*\*\*@upstream\.example\/": credentials in the URL are not used.*NIMBUS_UPSTREAM_KEY/);
  t.false(error.message.includes('secret1'));
  t.false(error.message.includes('secret2'));
});

test('a service URL with a query or a fragment is refused: request paths are appended to it', (t) => {
  const error = t.throws(() => loadConfig({ NIMBUS_REPUTATION_URL: 'http://rep.example/?token=secret4', NIMBUS_UPSTREAM_URL: 'http://up.example/#x' }), { instanceOf: ConfigError });
  t.regex(error.message, /NIMBUS_REPUTATION_URL="http:\/\/rep\.example\/\?token=\*\*\*": expected a base URL without \?query or #fragment/);
  t.regex(error.message, /NIMBUS_UPSTREAM_URL="http:\/\/up\.example\/#x": expected a base URL without/);
  t.false(error.message.includes('secret4'));
});

test('a wrong URL is echoed in the error with its password masked', (t) => {
  const error = t.throws(() => loadConfig({ NIMBUS_REPUTATION_URL: 'ftp://u:secret5@rep.example', NIMBUS_REDIS_URL: ':secret6@,:secret7@cache.example:6379' }), {
    instanceOf: ConfigError,
  });
  t.regex(error.message, /NIMBUS_REPUTATION_URL="ftp:\/\/u:\*\*\*@rep\.example": expected an http:\/\/ or https:\/\/ URL/);
  t.regex(error.message, /NIMBUS_REDIS_URL="redis:\/\/:\*\*\*@,redis:\/\/:\*\*\*@cache\.example:6379": expected redis:\/\/host:port/);
  for (const secret of ['secret5', 'secret6', 'secret7']) t.false(error.message.includes(secret), secret);
});

test('participation without the accepted statement refuses to start, naming the variable and the command', (t) => {
  const error = t.throws(() => loadConfig({ NIMBUS_PARTICIPATION: 'standard', NIMBUS_REPUTATION_URL: 'http://127.0.0.1:8787' }), {
    instanceOf: ConfigError,
  });
  t.regex(error.message, /NIMBUS_ACCEPT_STATEMENT=yes/);
  t.regex(error.message, /nimbus statement/);
  t.notThrows(() =>
    loadConfig({ NIMBUS_PARTICIPATION: 'standard', NIMBUS_ACCEPT_STATEMENT: 'yes', NIMBUS_REPUTATION_URL: 'http://127.0.0.1:8787' }),
  );
});

test('sizes accept units and the env file overrides the process environment', (t) => {
  t.is(parseSize('512KB'), 512 * 1024);
  t.is(parseSize('30MB'), 30 * 1024 * 1024);
  t.is(parseSize('12 parsecs'), null);
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-config-'));
  const file = join(dir, 'nimbus.env');
  writeFileSync(file, '# comment\nNIMBUS_MAX_MESSAGE_SIZE="10MB"\nNIMBUS_RELAY_DOMAINS=Example.org, example.net\n');
  const config = loadConfig({ NIMBUS_ENV_FILE: file, NIMBUS_MAX_MESSAGE_SIZE: '1MB' });
  t.is(config.maxMessageSize, 10 * 1024 * 1024);
  t.deepEqual(config.relayDomains, ['example.org', 'example.net']);
});

test('a check across variables is left out when one of them is already wrong: a missing TLS key file is not also told to set both', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-config-'));
  const cert = join(dir, 'cert.pem');
  writeFileSync(cert, 'not really a certificate');
  const error = t.throws(() => loadConfig({ NIMBUS_TLS_CERT: cert, NIMBUS_TLS_KEY: join(dir, 'missing.pem') }), { instanceOf: ConfigError });
  t.deepEqual(error.problems, [`NIMBUS_TLS_KEY=${JSON.stringify(join(dir, 'missing.pem'))}: expected a readable PEM file (file not found)`]);
  const alone = t.throws(() => loadConfig({ NIMBUS_TLS_CERT: cert }), { instanceOf: ConfigError });
  t.deepEqual(alone.problems, ['NIMBUS_TLS_CERT and NIMBUS_TLS_KEY: set both or neither']);
});

test('an empty variable takes its default, save NIMBUS_TRUSTED_NETWORKS, where empty trusts no client', (t) => {
  const config = loadConfig({ NIMBUS_DATA_DIR: '', NIMBUS_REDIS_URL: ' ', NIMBUS_LISTEN: '', NIMBUS_TRUSTED_NETWORKS: '' });
  t.is(config.dataDir, './data');
  t.deepEqual(config.redisUrls, ['redis://127.0.0.1:6379']);
  t.deepEqual(config.listen, { host: '127.0.0.1', port: 2525 });
  t.deepEqual(config.trustedNetworks, []);
  t.false(inBlockList(config.trustedBlockList, '127.0.0.1'));
});

test('the env file cannot name another env file: NIMBUS_ENV_FILE stays the one the process was given', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-config-'));
  const file = join(dir, 'nimbus.env');
  writeFileSync(file, `NIMBUS_ENV_FILE=${join(dir, 'elsewhere.env')}\nNIMBUS_SUBJECT_TAG=[SPAM]\n`);
  const config = loadConfig({ NIMBUS_ENV_FILE: file });
  t.is(config.envFile, file);
  t.is(config.subjectTag, '[SPAM]');
});

test('the NAME=value lines of nimbus config, read back as an env file, give the same configuration', (t) => {
  const env = {
    NIMBUS_LISTEN: '[::1]:2526', NIMBUS_NEXT_HOP: ':2600', NIMBUS_RELAY_DOMAINS: 'Example.org, example.net', NIMBUS_TRUSTED_NETWORKS: '',
    NIMBUS_MAX_MESSAGE_SIZE: '1536KB', NIMBUS_SPOOL_THRESHOLD: '1000', NIMBUS_SUBJECT_TAG: ' [SPAM] ', NIMBUS_WEIGHT_URL: '2.5',
    NIMBUS_SAMPLE_MAX_BYTES: '0', NIMBUS_ACCEPT_STATEMENT: 'on', NIMBUS_LOG_LEVEL: 'WARN', NIMBUS_REDIS_URL: 'a:1,rediss://b:2',
    NIMBUS_REPUTATION_URL: 'https://rep.example/base/', NIMBUS_METRICS_LISTEN: '127.0.0.1:9325', NIMBUS_WORKERS: '3',
    NIMBUS_DNS_SERVERS: '127.0.0.1, [::1]:5353', NIMBUS_DNS_LISTS: 'zen:ZEN.spamhaus.org.:ip:127.0.0.2=sbl+127.0.0.4-127.0.0.7:3, surbl:multi.surbl.org:domain:&8=ph+&16, mhr:hash.cymru.com:sha256',
  };
  const { config, values } = loadSettings(env);
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-config-'));
  const file = join(dir, 'printed.env');
  writeFileSync(file, `${configLines(values).join('\n')}\n`);
  const again = loadConfig({ NIMBUS_ENV_FILE: file });
  const { trustedBlockList: _a, envFile: _b, ...expected } = config;
  const { trustedBlockList: _c, envFile: _d, ...actual } = again;
  t.deepEqual(actual, expected);
  t.is(config.subjectTag, ' [SPAM] ');
});

test('NIMBUS_WORKERS auto gives the gateway every core and the milter half of them, at least one; a number applies to both', (t) => {
  const auto = loadConfig({});
  t.is(auto.workers, availableParallelism());
  t.is(auto.milterWorkers, Math.max(1, Math.floor(availableParallelism() / 2)));
  const three = loadConfig({ NIMBUS_WORKERS: '3' });
  t.deepEqual([three.workers, three.milterWorkers], [3, 3]);
  const error = t.throws(() => loadConfig({ NIMBUS_WORKERS: 'many' }), { instanceOf: ConfigError });
  t.regex(error.message, /NIMBUS_WORKERS="many": expected an integer >= 1 <= 256, or auto/);
});

test('NIMBUS_DNS_LISTS reads name:zone:kind[:codes][:weight] entries, and a list without a weight counts like a spam answer of its kind', (t) => {
  const config = loadConfig({
    NIMBUS_WEIGHT_URL: '4.5',
    NIMBUS_DNS_LISTS: 'zen:zen.spamhaus.org:ip:127.0.0.2=sbl+127.0.0.4-127.0.0.7=xbl:3, surbl:Multi.SURBL.org.:domain:&8=ph+&64, uribl:multi.uribl.com:domain:2.5, cop:bl.spamcop.net:ip4, hbl:_file.KEY123.hbl.dq.spamhaus.net:sha256-base32:127.0.3.10=malware',
  });
  t.deepEqual(config.dnsLists.map((list) => [list.name, list.zone, list.kind, list.weight]), [
    ['zen', 'zen.spamhaus.org', 'ip', 3],
    ['surbl', 'multi.surbl.org', 'domain', 4.5],
    ['uribl', 'multi.uribl.com', 'domain', 2.5],
    ['cop', 'bl.spamcop.net', 'ip4', config.weights.ip],
    ['hbl', '_file.key123.hbl.dq.spamhaus.net', 'sha256-base32', config.weights.attachment],
  ]);
  t.deepEqual(config.dnsLists[0]!.codes, [
    { range: { first: '127.0.0.2', last: '127.0.0.2' }, mask: null, meaning: 'sbl' },
    { range: { first: '127.0.0.4', last: '127.0.0.7' }, mask: null, meaning: 'xbl' },
  ]);
  t.deepEqual(config.dnsLists[1]!.codes, [{ range: null, mask: 8, meaning: 'ph' }, { range: null, mask: 64, meaning: null }]);
  t.deepEqual(config.dnsLists[3]!.codes, [], 'no codes: every 127.0.0.0/8 answer but a refusal');
  t.deepEqual(loadConfig({}).dnsLists, [], 'off by default');
});

test('a wrong NIMBUS_DNS_LISTS entry is named with what is wrong in it, every entry at once', (t) => {
  const error = t.throws(
    () => loadConfig({ NIMBUS_DNS_LISTS: 'zen:zen.spamhaus.org:ipv4, Bad-Name:dbl.spamhaus.org:domain, dbl:not a zone:domain:127.0.1.2, x:a.example:ip:127.0.0.9-127.0.0.2, y:b.example:ip:&300, z:c.example:ip:127.0.0.2:much, zen:d.example:ip' }),
    { instanceOf: ConfigError },
  );
  const problems = error.problems.join('\n');
  t.regex(problems, /NIMBUS_DNS_LISTS=.*list 1 \("zen:zen\.spamhaus\.org:ipv4"\): kind "ipv4": expected one of ip, ip4, domain, sha256, sha256-base32/);
  t.regex(problems, /list 2 \("Bad-Name:dbl\.spamhaus\.org:domain"\): name "Bad-Name": expected a lower-case word/);
  t.regex(problems, /list 3 .*: zone "not a zone": expected a DNS zone/);
  t.regex(problems, /list 4 .*: code "127\.0\.0\.9-127\.0\.0\.2": expected an answer address/);
  t.regex(problems, /list 5 .*: code "&300": a bitmask is &1 to &255/);
  t.regex(problems, /list 6 .*: weight "much": expected a number of points/);
  t.regex(problems, /list 7 .*: the name zen is already taken/);
  t.is(error.problems.length, 7);
});

test('NIMBUS_DNS_SERVERS takes resolver addresses with ports and refuses a name; NIMBUS_DNS_TIMEOUT_MS must fit inside NIMBUS_SCAN_TIMEOUT_MS', (t) => {
  t.deepEqual(loadConfig({ NIMBUS_DNS_SERVERS: '127.0.0.1:5353, ::1, [2001:db8::53]:53, 192.0.2.53' }).dnsServers, [
    { host: '127.0.0.1', port: 5353 },
    { host: '::1', port: 53 },
    { host: '2001:db8::53', port: 53 },
    { host: '192.0.2.53', port: 53 },
  ]);
  t.deepEqual(loadConfig({}).dnsServers, [], "empty: the system's resolvers");
  t.is(loadConfig({}).dnsTimeoutMs, 1000);
  const error = t.throws(() => loadConfig({ NIMBUS_DNS_SERVERS: 'resolver.example:53', NIMBUS_DNS_TIMEOUT_MS: '20000', NIMBUS_DNS_LISTS: 'zen:zen.spamhaus.org:ip' }), { instanceOf: ConfigError });
  t.regex(error.message, /NIMBUS_DNS_SERVERS="resolver\.example:53": .*a resolver is given by its address, not a name/);
  t.regex(error.message, /NIMBUS_DNS_TIMEOUT_MS=20000: expected less than NIMBUS_SCAN_TIMEOUT_MS \(10000\) while NIMBUS_DNS_LISTS asks the DNS/);
  t.notThrows(() => loadConfig({ NIMBUS_SCAN_TIMEOUT_MS: '300' }), 'a short scan budget alone needs no DNS setting');
  const checks = t.throws(() => loadConfig({ NIMBUS_AUTH_CHECKS: 'on', NIMBUS_SCAN_TIMEOUT_MS: '300' }), { instanceOf: ConfigError });
  t.regex(checks.message, /NIMBUS_DNS_TIMEOUT_MS=1000: expected less than NIMBUS_SCAN_TIMEOUT_MS \(300\) while NIMBUS_AUTH_CHECKS=on asks the DNS/);
});

test('src/config/ imports only node built-ins and two modules without imports, so the gateway supervisor that loads it stays light (no zod, no prom-client)', (t) => {
  const root = join(import.meta.dirname, '..', 'src');
  const specifiers = (path: string) => [...readFileSync(path, 'utf8').matchAll(/^(?:import|export)\b[^;]*?from '([^']+)'/gms)].map((match) => match[1]!);
  const configDir = join(root, 'config');
  for (const file of readdirSync(configDir).filter((name) => name.endsWith('.ts'))) {
    for (const specifier of specifiers(join(configDir, file))) {
      t.true(specifier.startsWith('node:') || /^\.\/[a-z-]+\.js$/.test(specifier) || ['../errors.js', '../redact.js'].includes(specifier), `${file} imports ${specifier}`);
    }
  }
  for (const file of ['errors.ts', 'redact.ts']) t.deepEqual(specifiers(join(root, file)), [], file);
});
