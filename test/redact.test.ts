import test from 'ava';
import { Writable } from 'node:stream';
import { createLogger } from '../src/log.js';
import { maskApiKey, maskCredentials } from '../src/redact.js';

test('the password of a URL is masked and its user, host, port and path are kept', (t) => {
  t.is(maskCredentials('redis://u:secret@127.0.0.1:6379'), 'redis://u:***@127.0.0.1:6379');
  t.is(maskCredentials('rediss://default:p%40ss@cache.example:6380/2'), 'rediss://default:***@cache.example:6380/2');
  t.is(maskCredentials('http://u:secret3@127.0.0.1:1/'), 'http://u:***@127.0.0.1:1/');
  // A user-info without a colon is a token (https://TOKEN@host): masked whole.
  t.is(maskCredentials('https://ghp_token@git.example/x'), 'https://***@git.example/x');
  t.is(maskCredentials('redis://:secret@127.0.0.1:6379'), 'redis://:***@127.0.0.1:6379');
});

test('every URL of a comma-separated Redis Cluster list is masked', (t) => {
  t.is(
    maskCredentials('redis://a:one@10.0.0.1:7000,redis://:two@10.0.0.2:7001,rediss://b:three@10.0.0.3:7002'),
    'redis://a:***@10.0.0.1:7000,redis://:***@10.0.0.2:7001,rediss://b:***@10.0.0.3:7002',
  );
});

test('a URL that does not parse is masked from // to its last @, raw @, / and # in the password included', (t) => {
  t.is(maskCredentials('redis://:p@ss@host:6379'), 'redis://:***@host:6379');
  t.is(maskCredentials('redis://u:pa/ss@host'), 'redis://u:***@host');
  t.is(maskCredentials('redis://:pa#ss@host'), 'redis://:***@host');
  // The WHATWG parser reads backslashes and a single slash as // in http URLs.
  t.is(maskCredentials('http:\\\\u:pw@host/'), 'http:\\\\u:***@host/');
});

test('URLs inside error messages are masked, the rest of the message is kept', (t) => {
  t.is(
    maskCredentials('request to http://u:secret3@127.0.0.1:1/v1/lookup failed, reason: connect ECONNREFUSED 127.0.0.1:1'),
    'request to http://u:***@127.0.0.1:1/v1/lookup failed, reason: connect ECONNREFUSED 127.0.0.1:1',
  );
  t.is(maskCredentials('http://u:secret3@127.0.0.1:1/v1/lookup is an url with embedded credentials.'), 'http://u:***@127.0.0.1:1/v1/lookup is an url with embedded credentials.');
  t.is(maskCredentials('cannot connect to Redis at redis://:x@h:1, redis://:y@h:2: WRONGPASS'), 'cannot connect to Redis at redis://:***@h:1, redis://:***@h:2: WRONGPASS');
});

test('secret query parameters, Bearer tokens and the secret of nmb_ keys are masked', (t) => {
  t.is(maskCredentials('redis://cache:6379?password=pw&db=2'), 'redis://cache:6379?password=***&db=2');
  t.is(maskCredentials('Authorization: Bearer abc.def'), 'Authorization: Bearer ***');
  t.is(maskCredentials('key nmb_0123abcd_sEcReT-_x9 refused'), 'key nmb_0123abcd_*** refused');
  t.is(maskCredentials('Bearer nmb_0123abcd_sEcReT'), 'Bearer nmb_0123abcd_***');
  t.is(maskApiKey('nmb_0123abcd_sEcReT'), 'nmb_0123abcd_***');
  t.is(maskApiKey('not-a-token-at-all'), '***');
});

test('text without credentials comes back unchanged, an @ in a path or mail address included', (t) => {
  for (const text of ['http://h/path?email=a@b.example', 'redis://127.0.0.1:6379', 'rcpt bob@example.com: 550', 'at f (node:internal/modules/esm/loader:606:24)', 'redis://@host']) {
    t.is(maskCredentials(text), text);
  }
});

test('a logger writes no password from a message, an error, its cause or a failed Redis AUTH', (t) => {
  let output = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output += chunk.toString('utf8');
      done();
    },
  });
  const log = createLogger('info', {}, sink);
  const redisError = Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), {
    command: { name: 'hello', args: ['3', 'AUTH', 'default', 'hello-secret'] },
  });
  const wrapped = new Error('lookup at http://u:cause-secret@h/v1/lookup failed', { cause: new Error('fetch redis://:inner-secret@h failed') });
  log.error({ event: 'e1', err: redisError }, 'store failed');
  log.error({ event: 'e2', err: wrapped }, 'calling http://u:msg-secret@h');
  log.warn({ event: 'e3', err: 'POST http://u:string-secret@h/v1/reports: refused' }, 'upload failed');
  log.error(new Error('no message given, http://u:bare-secret@h'));
  const lines = output.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.is(lines.length, 4);
  for (const secret of ['hello-secret', 'cause-secret', 'inner-secret', 'msg-secret', 'string-secret', 'bare-secret']) t.false(output.includes(secret), secret);
  t.deepEqual((lines[0]!.err as { command: unknown }).command, { name: 'hello', args: ['***', '***', '***', '***'] });
  t.regex((lines[1]!.err as { message: string }).message, /http:\/\/u:\*\*\*@h\/v1\/lookup failed: fetch redis:\/\/:\*\*\*@h failed/);
  t.is(lines[3]!.msg, 'no message given, http://u:***@h');
});
