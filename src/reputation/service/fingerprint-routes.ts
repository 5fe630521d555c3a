/**
 * `GET /v1/fingerprints/{fingerprint}` (admin key): why a fingerprint has its verdict, as DESIGN
 * describes it: what a lookup answers, its counters, the reporters behind its evidence (key ids,
 * their roles, each one's evidence and when it last reported), the near neighbours of a fuzzy
 * kind, and the override in force with its audit trail (engine explain).
 */
import type { FastifyInstance } from 'fastify';
import { fingerprintText } from '../api.js';
import { pairReporterId } from '../engine.js';
import { ERROR_CODES, HTTP, HttpError } from './errors.js';
import { admit, validate, type RouteContext } from './routes.js';

export function registerFingerprintRoutes(app: FastifyInstance, context: Pick<RouteContext, 'opened' | 'auth' | 'limiter'>): void {
  const { engine, keys } = context.opened;

  app.get<{ Params: { fingerprint: string } }>('/v1/fingerprints/:fingerprint', { config: { role: 'admin' } }, async (request) => {
    await admit(context, request, 'admin');
    const item = validate(fingerprintText, request.params.fingerprint, 'params.fingerprint');
    const found = await engine.explain(item);
    if (found === null) {
      throw new HttpError(HTTP.NOT_FOUND, ERROR_CODES.NOT_FOUND, `nothing is stored about fingerprint ${item}: never seen, reported or overridden here (or expired, untouched)`);
    }
    // A reporter id that is no key of this store (the embedded engine's `local`) has no role; a
    // trusted key's per-message evidence (`<key>/msg:<message>`) has its key's.
    const ids = [...new Set(found.reporters.map((r) => r.id))];
    const roles = new Map(await Promise.all(ids.map(async (id) => [id, (await keys.findKey(pairReporterId(id)))?.role ?? null] as const)));
    return { item, ...found, reporters: found.reporters.map((r) => ({ ...r, role: roles.get(r.id) ?? null })) };
  });
}
