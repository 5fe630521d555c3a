/**
 * The gateway side of `GET /v1/convictions`: while participating, the gateway follows the
 * service's stream and drops the cached answers it names, so the next copy of a campaign that
 * was just convicted is asked about again and caught. Participation `off`, no accepted
 * statement or no service: no stream at all (nothing may be exchanged). A refused key (401) is
 * said once, as lookups say it; the stream keeps trying at its longest backoff, and a reload
 * with a fixed key starts a new one.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import { maskUrl } from '../redact.js';
import { ConvictionStream } from '../reputation/convictions-client.js';
import type { ReputationLookups } from './lookups.js';

export function followConvictions(config: Config, log: Logger, lookups: () => ReputationLookups): ConvictionStream | null {
  if (config.participation === 'off' || !config.acceptStatement || config.reputationUrl === null) return null;
  let wasUp = false;
  let refusedLogged = false;
  const stream: ConvictionStream = new ConvictionStream({
    url: config.reputationUrl,
    key: config.reputationKey ?? '',
    handlers: {
      changed: (changes) => {
        const items = changes.map((change) => change.item);
        const neighbours = lookups().forget(items);
        log.debug({ event: 'lookup.convictions_dropped', items, neighbours, lastEventId: stream.lastEventId }, 'cached answers dropped: their verdict changed, or a near neighbour\'s did');
      },
      reset: () => {
        lookups().forgetAll();
        log.debug({ event: 'lookup.convictions_reset' }, 'every cached answer dropped: the service cannot tell what changed meanwhile');
      },
      up: () => {
        wasUp = true;
        refusedLogged = false;
        lookups().setStreamUp(true);
        log.info({ event: 'lookup.convictions_up', service: maskUrl(config.reputationUrl) }, 'following the reputation service\'s convictions: cached answers are dropped as soon as their verdict changes');
      },
      down: (status, reason) => {
        lookups().setStreamUp(false);
        if (status === 401) {
          if (!refusedLogged) {
            log.error({ event: 'lookup.convictions_auth_rejected', err: reason }, 'reputation service rejected NIMBUS_REPUTATION_KEY (401) for the convictions stream: answers are kept only briefly until the key is fixed');
            refusedLogged = true;
          }
        } else if (wasUp) {
          log.warn({ event: 'lookup.convictions_down', status, err: reason }, 'convictions stream down: reconnecting; service answers are kept only briefly meanwhile');
        }
        wasUp = false;
      },
    },
  });
  return stream;
}
