/** `nimbus statement [--json]`: exactly what each participation mode sends (from src/stats/wire.ts). */
import { PARTICIPATION_MODES } from '../config/index.js';
import { SAMPLE_RULES } from '../stats/samples.js';
import { exampleRecord, statementText } from '../stats/statement.js';
import { NEVER_SENT, STATEMENT } from '../stats/wire.js';

export async function run(args: string[]): Promise<number> {
  if (args.includes('--json')) {
    const modes = Object.fromEntries(PARTICIPATION_MODES.map((mode) => [mode, { sends: STATEMENT[mode], example: exampleRecord(mode), samples: mode === 'extended' ? SAMPLE_RULES : [] }]));
    process.stdout.write(`${JSON.stringify({ neverSent: NEVER_SENT, modes }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(statementText());
  return 0;
}
