/**
 * GTUBE, the Generic Test for Unsolicited Bulk Email as SpamAssassin defines it: a message that
 * carries it is always spam, whatever the thresholds, so admins can test the path end to end.
 */
import type { Readable } from 'node:stream';

export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
export const GTUBE_TEST = 'NIMBUS_GTUBE';
/** Points GTUBE adds: above any reject score an admin would set. */
export const GTUBE_POINTS = 1000;

/**
 * Searches a stream chunk by chunk (keeping only a GTUBE-long overlap), so a message too large
 * to parse is still searched without being held whole.
 */
export async function streamContainsGtube(stream: Readable): Promise<boolean> {
  let tail: Buffer = Buffer.alloc(0);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const window: Buffer = tail.length === 0 ? chunk : Buffer.concat([tail, chunk]);
    if (window.includes(GTUBE)) {
      stream.destroy();
      return true;
    }
    tail = window.subarray(Math.max(0, window.length - GTUBE.length + 1));
  }
  return false;
}
