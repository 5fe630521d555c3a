/**
 * Every log event Nimbus writes, in one registry: the name an admin matches in the journal, and
 * the level(s) it is written at. docs/reference/log-events.md describes each (when, fields); a
 * test keeps this table, the log calls in src/ and that page in step.
 *
 * Naming: lower-case words joined by dots, the first naming the part that writes it (gateway,
 * milter, supervisor, process, scan, lookup, feedback, dns, stats, reputation), snake_case within a word.
 */
type Level = 'debug' | 'info' | 'warn' | 'error';

export const LOG_EVENTS: Readonly<Record<string, readonly Level[]>> = Object.freeze({
  // The relay (src/gateway/): one `gateway.message` per message, plus what refused or failed.
  'gateway.listening': ['info'],
  'gateway.reloaded': ['info'],
  'gateway.closed': ['info'],
  'gateway.message': ['info', 'error'],
  'gateway.relay_denied': ['info'],
  'gateway.routing_refused': ['info'],
  'gateway.refused_recipients_limit': ['info'],
  'gateway.next_hop_failed': ['warn'],
  'gateway.quarantine_unavailable': ['warn'],
  'gateway.quarantine_failed': ['error'],
  'gateway.maildir_failed': ['error'],
  'gateway.observer_failed': ['error'],
  'gateway.smtp_error': ['warn'],
  'gateway.error': ['error'],
  // The milter (src/milter/): one `milter.message` per message, plus what failed.
  'milter.listening': ['info'],
  'milter.reloaded': ['info'],
  'milter.closed': ['info'],
  'milter.message': ['info', 'warn', 'error'],
  'milter.protocol_error': ['warn'],
  'milter.connection_error': ['debug'],
  'milter.listen_error': ['warn'],
  'milter.quarantine_failed': ['error'],
  'milter.observer_failed': ['error'],
  'milter.error': ['error'],
  // The gateway's workers' supervisor (node:cluster primary).
  'supervisor.workers_starting': ['info'],
  'supervisor.workers_ready': ['info'],
  'supervisor.worker_exited': ['error'],
  'supervisor.worker_start_failed': ['error'],
  'supervisor.reload_forwarded': ['info'],
  'supervisor.stopped': ['info'],
  // Any Nimbus process: signals and configuration reloads.
  'process.signal': ['info'],
  'process.close_failed': ['error'],
  'process.reload_failed': ['error'],
  'process.reload_needs_restart': ['warn'],
  'process.consent_withdrawn': ['warn'],
  // The scan core (src/scan/) and its use of reputation.
  'scan.runtime_ready': ['info'],
  'scan.timeout': ['warn'],
  'scan.failed': ['error'],
  'scan.late_failure': ['debug'],
  'scan.trap_feedback_failed': ['warn'],
  'scan.auth_failed': ['warn'],
  'scan.local_learn_failed': ['warn'],
  'lookup.timeout': ['warn'],
  'lookup.error': ['warn'],
  'lookup.auth_rejected': ['error'],
  'lookup.convictions_up': ['info'],
  'lookup.convictions_down': ['warn'],
  'lookup.convictions_auth_rejected': ['error'],
  'lookup.convictions_dropped': ['debug'],
  'lookup.convictions_reset': ['debug'],
  'feedback.forbidden': ['error'],
  // The DNS layer and the public DNS lists (src/dns/): each said once per list, not per message.
  'dns.list_refused': ['error'],
  'dns.list_unexpected_answer': ['warn'],
  'dns.list_failing': ['warn'],
  'dns.list_recovered': ['info'],
  'feedback.remote_failed': ['warn'],
  // Statistics and participation (src/stats/).
  'stats.upload.started': ['info'],
  'stats.upload.stopped': ['info'],
  'stats.upload.batch': ['info'],
  'stats.upload.sample': ['info'],
  'stats.upload.failed': ['warn'],
  'stats.upload.store_error': ['warn'],
  'stats.upload.auth_rejected': ['error'],
  'stats.upload.release_failed': ['warn'],
  'stats.upload.crashed': ['error'],
  'stats.backlog.discarded': ['info'],
  'stats.outbox.dropped': ['warn'],
  'stats.samples.forbidden': ['error'],
  'stats.samples.refused': ['warn'],
  'stats.samples.keep_failed': ['warn'],
  'stats.samples.discarded': ['info'],
  'stats.samples.dropped': ['warn'],
  // The reputation service (src/reputation/service/).
  'reputation.listening': ['info'],
  'reputation.reloaded': ['info'],
  'reputation.request': ['info', 'debug'],
  'reputation.request_failed': ['error'],
  'reputation.store_unavailable': ['warn'],
  'reputation.store_available': ['info'],
  'reputation.redis_persistence': ['info'],
  'reputation.redis_persistence_unsafe': ['warn'],
  'reputation.upstream_lookup_failed': ['warn'],
  'reputation.upstream_report_failed': ['warn'],
  'reputation.upstream_feedback_failed': ['warn'],
  'reputation.upstream_convictions_up': ['info'],
  'reputation.upstream_convictions_down': ['warn'],
  'reputation.convictions_connected': ['info'],
  'reputation.convictions_key_refused': ['info'],
  'reputation.convictions_publish_failed': ['warn'],
  'reputation.convictions_follow_failed': ['warn'],
});

/** The convention every name follows (see the top of this file). */
export const LOG_EVENT_NAME = /^(gateway|milter|supervisor|process|scan|lookup|feedback|dns|stats|reputation)(\.[a-z][a-z_]*)+$/;
