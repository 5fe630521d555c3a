/**
 * The inspector the gateway runs with until the reputation parts plug in theirs: GTUBE is spam
 * (so admins can test the path end to end), everything else `unknown`.
 */
import type { Config } from '../config.js';
import type { Inspection, InspectionAction, InspectionRequest, MessageInspector } from './inspection.js';
import { formatVerdictHeaders } from './verdict-headers.js';

/** The Generic Test for Unsolicited Bulk Email, as SpamAssassin defines it. */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
export const GTUBE_SCORE = 1000;

export class DefaultInspector implements MessageInspector {
  #config: Pick<Config, 'tagScore' | 'spamAction'>;

  constructor(config: Pick<Config, 'tagScore' | 'spamAction'>) {
    this.#config = config;
  }

  async inspect(request: InspectionRequest): Promise<Inspection> {
    const required = this.#config.tagScore;
    if (request.spamtrapHits.length > 0 && request.spamtrapHits.length === request.envelope.rcptTo.length) {
      return { ...unknownInspection(required), action: 'trap' };
    }
    if (await containsGtube(request)) {
      const action: InspectionAction = this.#config.spamAction;
      return {
        verdict: 'spam',
        score: GTUBE_SCORE,
        required,
        action,
        headers: formatVerdictHeaders({ verdict: 'spam', score: GTUBE_SCORE, required, tests: ['NIMBUS_GTUBE'] }),
        subjectTag: true,
      };
    }
    return unknownInspection(required);
  }
}

/** What is stamped when nothing is known, or the inspector failed. */
export function unknownInspection(required: number): Inspection {
  return {
    verdict: 'unknown',
    score: 0,
    required,
    action: 'deliver',
    headers: formatVerdictHeaders({ verdict: 'unknown', score: 0, required }),
    subjectTag: false,
  };
}

/** Scans the spooled message chunk by chunk (with an overlap), never holding it whole. */
async function containsGtube(request: InspectionRequest): Promise<boolean> {
  let tail = Buffer.alloc(0);
  for await (const chunk of request.streamMessage() as AsyncIterable<Buffer>) {
    const window = Buffer.concat([tail, chunk]);
    if (window.includes(GTUBE)) return true;
    tail = window.subarray(Math.max(0, window.length - GTUBE.length + 1));
  }
  return false;
}
