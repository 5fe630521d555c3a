/**
 * Real reputation services for tests: each on 127.0.0.1 port 0 over its own SQLite store in a
 * temp dir, with one key per role; closed and removed at teardown.
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../../src/config/index.js';
import type { KeyRole, ReportRecord } from '../../src/reputation/api.js';
import type { OpenedReputation } from '../../src/reputation/engine-types.js';
import { openReputation } from '../../src/reputation/open.js';
import { startReputationService, type RunningReputationService } from '../../src/reputation/service.js';
import { tempDir } from './temp.js';

export interface TestService {
  readonly url: string;
  readonly config: Config;
  readonly opened: OpenedReputation;
  readonly service: RunningReputationService;
  /** A token per role, rate 100,000/s so only the rate-limit test meets a limit. */
  readonly tokens: Record<KeyRole, string>;
  /** Adds a key and returns its id and token. */
  addKey(role: KeyRole, rate?: number): Promise<{ id: string; token: string }>;
}

/** `log`: the service's logger (silent when not given), e.g. one writing into an array. */
export async function startTestService(t: ExecutionContext, env: Record<string, string> = {}, log: Logger = pino({ level: 'silent' })): Promise<TestService> {
  const dir = tempDir('nimbus-rep-svc-');
  const config = loadConfig({ NIMBUS_DATA_DIR: dir, NIMBUS_HTTP_LISTEN: '127.0.0.1:0', NIMBUS_LOG_LEVEL: 'silent', ...env });
  const opened = await openReputation({ store: 'sqlite', path: path.join(dir, 'reputation.sqlite') });
  const service = await startReputationService(config, log, opened);
  t.teardown(async () => {
    await service.close();
    await opened.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const addKey = async (role: KeyRole, rate = 100_000) => {
    const { key, token } = await opened.keys.addKey(role, `test ${role}`, rate);
    return { id: key.id, token };
  };
  const tokens = {
    sensor: (await addKey('sensor')).token,
    reporter: (await addKey('reporter')).token,
    admin: (await addKey('admin')).token,
  };
  return { url: service.url, config, opened, service, tokens, addKey };
}

/** JSON over real HTTP; returns status, headers and the parsed body. */
export async function call(
  url: string,
  method: string,
  pathname: string,
  token: string | null,
  body?: unknown,
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${url}${pathname}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // /metrics is text
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

let counter = 0;
/**
 * A distinct, valid fingerprint per call (sha256 text form, as the fingerprinters emit). Content
 * by default: a trusted report convicts content at once, shared infrastructure (url, ip) only
 * from a second reported message (docs/design/reputation-engine.md).
 */
export function fingerprint(kind: 'url' | 'attachment' | 'ip' = 'attachment'): string {
  counter += 1;
  return `${kind}:sha256:${createHash('sha256').update(`${process.pid}/${counter}`).digest('hex')}`;
}

export function record(id: string, fingerprints: string[], verdict: 'spam' | 'ham' | 'bulk' | 'unknown' = 'spam'): ReportRecord {
  return { id, time: new Date().toISOString(), fingerprints, verdict, score: verdict === 'spam' ? 9 : 0, action: 'deliver' };
}
