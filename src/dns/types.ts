/**
 * What a DNS query gives every check that makes one: records, a negative answer, or a failure.
 * A failure is a result like the others (SPF calls it `temperror`), never an exception: no DNS
 * problem may hold or lose mail.
 */

export type DnsRecordType = 'A' | 'AAAA' | 'TXT' | 'MX' | 'PTR';

/** Why an answer could not be had. `budget`: the message's DNS budget ran out first. */
export type DnsFailure = 'timeout' | 'servfail' | 'refused' | 'budget' | 'error';

export type DnsResult<T> =
  | { readonly status: 'ok'; readonly records: readonly T[] }
  /** NXDOMAIN: the name does not exist; NODATA: it exists without records of the type asked. */
  | { readonly status: 'nxdomain' | 'nodata' }
  | { readonly status: 'temperror'; readonly reason: DnsFailure; readonly detail: string };

/** A TXT record is one or more strings; SPF, DKIM and DMARC read them joined. */
export type TxtRecord = readonly string[];

/** An MX record (SPF's `mx` mechanism). */
export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

/** Where an answer came from, for logs and tests. */
export interface DnsAnswer<T> {
  readonly result: DnsResult<T>;
  /** Served from the cache: nothing was asked. */
  readonly cached: boolean;
}
