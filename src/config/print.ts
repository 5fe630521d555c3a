/**
 * The effective configuration for `nimbus config`, secrets masked (src/redact.ts): URL passwords
 * as `user:***@`, keys as `nmb_<id>_***` so that the id can be matched against `nimbus keys list`.
 */
import { maskApiKey, maskCredentials, maskUrl } from '../redact.js';
import { shownValue, VARIABLES, type Values, type Variable, type VariableName } from './table.js';
import type { Config } from './types.js';

/**
 * `NAME=value` per variable, in the table's order, as an env file would hold them: a value that
 * an env file would otherwise trim, or unquote, is quoted.
 */
export function configLines(values: Values): string[] {
  return (Object.entries(VARIABLES) as [VariableName, Variable<unknown>][]).map(([name, variable]) => {
    const value = shownValue(variable, variable.parser.format(values[name]));
    return `${name}=${/^[\s"']|\s$/.test(value) ? `"${value}"` : value}`;
  });
}

/** The `Config` object by its field names (`nimbus config --json`). */
export function printableConfig(config: Config): Record<string, unknown> {
  const { trustedBlockList: _omit, ...rest } = config;
  const key = (value: string | null): string | null => (value === null ? null : maskApiKey(value));
  return {
    ...rest,
    reputationUrl: maskUrl(config.reputationUrl),
    upstreamUrl: maskUrl(config.upstreamUrl),
    redisUrls: config.redisUrls.map(maskCredentials),
    reputationKey: key(config.reputationKey),
    upstreamKey: key(config.upstreamKey),
  };
}
