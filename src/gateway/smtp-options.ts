/**
 * The SMTP dialogue the relay offers (smtp-server options): size limit, timeouts, extensions, TLS,
 * and which clients are spared a reverse DNS lookup. The handlers are the gateway's own (server.ts).
 */
import { readFileSync } from 'node:fs';
import { reverse } from 'node:dns';
import type { SMTPServerOptions } from 'smtp-server';
import type { Config } from '../config/index.js';

export function protocolOptions(config: Config, isTrusted: (ip: string) => boolean): SMTPServerOptions {
  return {
    name: config.hostname,
    banner: 'Nimbus ESMTP',
    logger: false,
    size: config.maxMessageSize,
    // smtp-server answers 552 5.3.4 itself after reading the whole oversized stream.
    rejectOversized: true,
    maxClients: config.maxConnections,
    socketTimeout: config.socketTimeoutMs,
    closeTimeout: config.nextHopTimeoutMs * 2 + 10_000,
    hideENHANCEDSTATUSCODES: false,
    hideSTARTTLS: config.tls === null,
    hideDSN: true,
    hideREQUIRETLS: true,
    authOptional: true,
    disabledCommands: ['AUTH'],
    // Enabled for everyone here, then disabled per session for untrusted clients (onConnect):
    // smtp-server's own lists match exact addresses only, not NIMBUS_TRUSTED_NETWORKS's CIDRs.
    useXClient: true,
    useXForward: true,
    // No reverse DNS for a trusted client: it is our own MTA (Postfix passes the real client's
    // name with XFORWARD), and its lookup would hold the greeting of every connection.
    resolver: { reverse: (ip, callback) => (isTrusted(ip) ? callback(null, []) : reverse(ip, callback)) },
    ...(config.tls ? { key: readFileSync(config.tls.key), cert: readFileSync(config.tls.cert) } : {}),
  };
}
