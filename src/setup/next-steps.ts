/**
 * What `nimbus setup` prints after writing the env file: the systemd commands, the Postfix lines
 * for the way Nimbus is plugged in (src/setup/ways.ts), and what else the answers call for.
 */
import { parseHostPort } from '../config/index.js';
import { DEFAULT_ENV_FILE } from './env-file.js';
import type { SetupPlan } from './questions.js';
import { postfixLines, WAYS } from './ways.js';

export interface Written {
  readonly path: string;
  readonly mode: number;
  /** The group that may read it (the gateway's), or null. */
  readonly group: string | null;
}

export function nextSteps(plan: SetupPlan, written: Written): string {
  const value = (name: string): string => plan.answers.find((answer) => answer.name === name)?.value ?? '';
  const listen = parseHostPort(value('NIMBUS_LISTEN'))!;
  const nextHop = value('NIMBUS_NEXT_HOP') === '' ? null : parseHostPort(value('NIMBUS_NEXT_HOP'));
  const out: string[] = [`Wrote ${written.path} (mode ${written.mode.toString(8).padStart(4, '0')}${written.group ? `, group ${written.group}` : ''}).`, ''];
  if (written.path !== DEFAULT_ENV_FILE) {
    out.push(`The systemd units read ${DEFAULT_ENV_FILE}: copy the file there, or start nimbus by hand with NIMBUS_ENV_FILE=${written.path}.`, '');
  }
  out.push(
    'Next steps:',
    '  systemctl daemon-reload',
    '  systemctl enable --now nimbus-gateway    # the first time',
    '  systemctl restart nimbus-gateway         # when it runs already (reload is enough unless NIMBUS_LISTEN changed)',
    '  journalctl -u nimbus-gateway -f          # its log: one line per message',
  );
  if (nextHop === null) out.push('', 'No next hop: mail is delivered into the Maildir under NIMBUS_DATA_DIR (/var/lib/nimbus/maildir under systemd).');
  const spec = WAYS[plan.way];
  out.push('', `Postfix (${plan.way}, ${spec.docs}):`);
  for (const { file, lines } of postfixLines(plan.way, listen, nextHop)) out.push(`  ${file} (add):`, ...lines.map((line) => `    ${line}`));
  out.push(plan.way === 'front-mx' ? '  then `postfix reload` there, and point the MX records of your relay domains at this host.' : '  then: postfix check && postfix reload');
  if (value('NIMBUS_PARTICIPATION') !== '' && value('NIMBUS_PARTICIPATION') !== 'off') {
    out.push('', '`nimbus stats` shows the uploads to the reputation service once the gateway runs.');
  }
  return `${out.join('\n')}\n`;
}
