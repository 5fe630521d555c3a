/**
 * Spam traps (NIMBUS_SPAMTRAPS): addresses no person reads, so whatever reaches one is spam. The
 * fronts ask at RCPT time (a trap recipient is accepted by Nimbus itself and never passed on),
 * the scan core asks again for the envelope it is given.
 */
import type { Config } from '../config/index.js';

export function isSpamTrap(config: Pick<Config, 'spamtraps'>, recipient: string): boolean {
  return config.spamtraps.includes(recipient.toLowerCase());
}

export function spamTrapHits(config: Pick<Config, 'spamtraps'>, recipients: readonly string[]): string[] {
  return recipients.filter((recipient) => isSpamTrap(config, recipient));
}
