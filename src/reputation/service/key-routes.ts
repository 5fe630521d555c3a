/**
 * Keys over HTTP (admin key), for the console's Keys page: the same key store `nimbus keys`
 * opens. `GET /v1/keys` lists them (never a secret: only the hash is stored), `POST /v1/keys`
 * adds one and answers its token once, `DELETE /v1/keys/{id}` revokes one (running services
 * refuse it within their key cache's lifetime). A key cannot revoke itself: an admin would lock
 * the console out with one click.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { KEY_ROLES } from '../api.js';
import type { StoredKey } from '../engine-types.js';
import { ERROR_CODES, HTTP, HttpError } from './errors.js';
import { admit, validate, type RouteContext } from './routes.js';

const newKey = z.object({ role: z.enum(KEY_ROLES), label: z.string().max(200).optional(), rate: z.number().positive().max(1_000_000).optional() });
const keyId = z.string().regex(/^[0-9a-f]{1,64}$/, 'a key id: hex digits');

/** A key as the API shows it: everything but the secret's hash. */
function shown(key: StoredKey) {
  return { id: key.id, role: key.role, label: key.label, rateLimit: key.rateLimit, createdAt: key.createdAt, revokedAt: key.revokedAt };
}

export function registerKeyRoutes(app: FastifyInstance, context: Pick<RouteContext, 'opened' | 'auth' | 'limiter'>): void {
  const { keys } = context.opened;

  app.get('/v1/keys', { config: { role: 'admin' } }, async (request) => {
    await admit(context, request, 'admin');
    return { keys: (await keys.listKeys()).map(shown) };
  });

  app.post('/v1/keys', { config: { role: 'admin' } }, async (request, reply) => {
    await admit(context, request, 'admin');
    const body = validate(newKey, request.body);
    const { key, token } = await keys.addKey(body.role, body.label ?? '', body.rate);
    return reply.code(201).send({ ...shown(key), token });
  });

  app.delete<{ Params: { id: string } }>('/v1/keys/:id', { config: { role: 'admin' } }, async (request) => {
    const caller = await admit(context, request, 'admin');
    const id = validate(keyId, request.params.id, 'params.id');
    if (id === caller.id) throw new HttpError(HTTP.BAD_REQUEST, ERROR_CODES.BAD_REQUEST, `key ${id} is the key of this request: a key cannot revoke itself (use another admin key, or \`nimbus keys revoke\`)`);
    if (!(await keys.revokeKey(id))) throw new HttpError(HTTP.NOT_FOUND, ERROR_CODES.NOT_FOUND, `no key ${id} in this store`);
    return { id, revoked: true };
  });
}
