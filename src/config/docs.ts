/**
 * docs/admin/configuration.md, generated from the table: `npm run docs:config` writes it
 * (`nimbus config --markdown`), and test/config-docs.test.ts fails when the committed page is
 * not what the table generates. Nothing here depends on the machine: a default that does (the
 * hostname, the number of cores) is stated by its `defaultDoc`.
 */
import { PARTS, VARIABLES, type Part, type Variable } from './table.js';

const INTRO = `# Configuration

Generated from \`src/config/table.ts\` (\`npm run docs:config\`); do not edit this page, edit the
table: each variable's default, parser and meaning are defined there, once.

Nimbus reads environment variables only; under systemd they are in \`/etc/nimbus/nimbus.env\`
(\`systemd/nimbus.env\` is a commented example). With \`NIMBUS_ENV_FILE\` set, that file is read at
start and again on SIGHUP (\`systemctl reload\`), and its values win over the process environment.

Every value is checked at start: a wrong one stops the process (exit code 78) with the variable's
name, the value (a secret in it masked) and what is allowed, every wrong variable at once. An
unset or empty variable takes its default, save \`NIMBUS_TRUSTED_NETWORKS\`, where empty trusts no
client.

\`nimbus config\` prints the effective values, one \`NAME=value\` per line in the order of this
page; \`nimbus config --json\` prints the parsed configuration as JSON. Secrets are masked in both,
as in every error and log line: keys as \`nmb_<id>_***\` (the id as \`nimbus keys list\` shows it),
a password inside a URL as \`user:***@\`.
`;

const SECRET_DOC: Record<NonNullable<Variable<unknown>['secret']>, string> = {
  key: 'yes: shown as `nmb_<id>_***`',
  url: 'its password, if any: shown as `user:***@`',
};

/** Markdown for a table cell: a `|` would end the cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function defaultCell(variable: Variable<unknown>): string {
  if (variable.defaultDoc !== undefined) return variable.defaultDoc;
  return variable.default === '' ? 'empty' : `\`${String(variable.default)}\``;
}

/** The page, from the table. */
export function configurationPage(): string {
  const entries = Object.entries(VARIABLES) as [string, Variable<unknown>][];
  const sections = (Object.entries(PARTS) as [Part, string][]).map(([part, title]) => {
    const rows = entries
      .filter(([, variable]) => variable.part === part)
      .map(([name, variable]) => `| \`${name}\` | ${cell(defaultCell(variable))} | ${cell(variable.doc)} | ${variable.secret ? SECRET_DOC[variable.secret] : 'no'} |`);
    return [`## ${title}`, '', '| variable | default | meaning | secret |', '|---|---|---|---|', ...rows].join('\n');
  });
  return `${INTRO}\n${sections.join('\n\n')}\n`;
}
