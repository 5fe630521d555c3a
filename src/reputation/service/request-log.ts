/**
 * One log line per request, `reputation_request`: method, route (the pattern, e.g.
 * `/v1/verdicts/:fingerprint`), status, duration in ms and the id of the key that was admitted
 * (null when none was; never the token or its secret). Requests that change state (POST, PUT,
 * DELETE) are logged at info: who reported, who overrode a verdict, who was refused. Lookups are
 * read-only and the hot path (thousands a second), so they are logged at debug, as are GETs
 * (health, metrics, reading a sample back); NIMBUS_LOG_LEVEL=debug shows them too.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

const CHANGES_STATE = new Set(['POST', 'PUT', 'DELETE']);
/** POST, but read-only in effect. */
const READ_ONLY_POSTS = new Set(['/v1/lookup']);

export function logRequest(log: Logger, request: FastifyRequest, reply: FastifyReply, ms: number): void {
  const route = request.routeOptions.url ?? null;
  const info = CHANGES_STATE.has(request.method) && !(route !== null && READ_ONLY_POSTS.has(route));
  if (!info && !log.isLevelEnabled('debug')) return;
  const entry = { event: 'reputation.request', method: request.method, route, status: reply.statusCode, ms: Math.round(ms * 10) / 10, key: request.apiKey?.id ?? null };
  if (info) log.info(entry, 'request');
  else log.debug(entry, 'request');
}
