/**
 * Configuration: environment variables only, parsed once at the edge into a frozen, typed object.
 *
 * table.ts      every variable: default, parser, one-line doc, secret or not (the one place to add one)
 * parsers.ts    text → typed value, or what was wrong; value → text
 * loader.ts     env + NIMBUS_ENV_FILE → frozen `Config`, every problem at once; the SIGHUP reload
 * print.ts      `nimbus config`: NAME=value lines, or the Config as JSON, secrets masked
 * docs.ts       docs/admin/configuration.md, generated from the table
 * types.ts      the `Config` type the rest of Nimbus reads, and ConfigError
 */
export * from './types.js';
export { addCidr, blockListOf, inBlockList, parseHostPort, parseSize } from './parsers.js';
export { effectiveEnv, loadConfig, loadConfigForReload, loadSettings, readEnvFile, type ReloadedConfig, type Settings } from './loader.js';
export { configurationPage } from './docs.js';
export { configLines, printableConfig } from './print.js';
export { PARTS, VARIABLES, type Part, type Values, type Variable, type VariableName } from './table.js';
