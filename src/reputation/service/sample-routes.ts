/**
 * Attachment samples (extended participation): `POST /v1/samples` (reporter or admin key) stores
 * one sample, idempotent by its SHA-256; `GET /v1/samples/{sha256}` (admin key) gives the bytes
 * back for analysis. A sensor key only reports statistics: bytes of attachments are a bigger
 * trust, given to the keys that may also send feedback.
 *
 * The sample's SHA-256 is checked against its bytes, so a sample stored under a hash is the file
 * every gateway knows by that hash. The bytes are served as application/octet-stream with
 * `nosniff`, never under the sender-declared type: a sample is hostile content, not a web page.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { sampleUpload } from '../api.js';
import { ERROR_CODES, HTTP, HttpError } from './errors.js';
import { admit, validate, type RouteContext } from './routes.js';
import type { SampleStore } from './samples.js';

export interface SampleRouteContext extends Pick<RouteContext, 'auth' | 'limiter'> {
  readonly samples: SampleStore;
  /** NIMBUS_SAMPLE_MAX_BYTES of this service: larger samples get 413; 0 refuses every sample. */
  readonly maxBytes: number;
}

const sha256Param = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits');

/** The JSON body of the largest acceptable sample: base64 grows 4/3, plus the other fields. */
export function sampleBodyLimit(maxBytes: number): number {
  return Math.ceil(maxBytes / 3) * 4 + 4096;
}

export function registerSampleRoutes(app: FastifyInstance, context: SampleRouteContext): void {
  const tooLarge = (size: number) =>
    new HttpError(
      HTTP.PAYLOAD_TOO_LARGE,
      ERROR_CODES.TOO_LARGE,
      context.maxBytes === 0 ? 'this service accepts no samples (NIMBUS_SAMPLE_MAX_BYTES=0)' : `sample of ${size} bytes is over this service's limit of ${context.maxBytes} bytes`,
    );

  app.post('/v1/samples', { bodyLimit: sampleBodyLimit(context.maxBytes), config: { role: 'reporter' } }, async (request) => {
    const key = await admit(context, request, 'reporter');
    const body = validate(sampleUpload, request.body);
    if (body.size > context.maxBytes) throw tooLarge(body.size);
    const content = Buffer.from(body.content, 'base64');
    if (content.length > context.maxBytes) throw tooLarge(content.length);
    if (content.length !== body.size) {
      throw new HttpError(HTTP.BAD_REQUEST, ERROR_CODES.BAD_REQUEST, `body.size: ${body.size}, but body.content decodes to ${content.length} bytes`);
    }
    const actual = createHash('sha256').update(content).digest('hex');
    if (actual !== body.sha256) {
      throw new HttpError(HTTP.BAD_REQUEST, ERROR_CODES.BAD_REQUEST, `body.sha256: does not match the SHA-256 of body.content (${actual})`);
    }
    const { duplicate } = await context.samples.put({
      sha256: body.sha256,
      type: body.type,
      size: content.length,
      reporter: key.id,
      received: new Date().toISOString(),
      content,
    });
    return { sha256: body.sha256, duplicate };
  });

  app.get<{ Params: { sha256: string } }>('/v1/samples/:sha256', { config: { role: 'admin' } }, async (request, reply) => {
    await admit(context, request, 'admin');
    const sha256 = validate(sha256Param, request.params.sha256, 'params.sha256');
    const sample = await context.samples.get(sha256);
    if (!sample) throw new HttpError(HTTP.NOT_FOUND, ERROR_CODES.NOT_FOUND, `no sample ${sha256}`);
    reply.headers({
      'content-type': 'application/octet-stream',
      'content-disposition': `attachment; filename="${sha256}.sample"`,
      'x-content-type-options': 'nosniff',
      // The declared type may hold any printable text; header values must stay one safe line.
      'x-nimbus-sample-type': encodeURIComponent(sample.type),
      'x-nimbus-sample-received': sample.received,
      'x-nimbus-sample-reporter': sample.reporter,
    });
    return sample.content;
  });
}
