/**
 * How each question of `nimbus setup` is answered: by its flag when given, by its default with
 * `--yes`, else on the terminal (asked again until the answer is valid). Without a terminal and
 * without `--yes`, a missing flag is an error: an unattended install never hangs on a question.
 *
 * Validity is the config table's: the variable's own parser (what the gateway would refuse at
 * start is refused here, with the same words), plus the question's rule between answers.
 */
import { shownValue } from '../config/table.js';
import { variableNamed } from './env-file.js';
import { SetupUsageError, type AnswerSource, type Check, type Question } from './questions.js';
import type { Terminal } from './terminal.js';

/** What is wrong with `value` as the answer to `question`, or null. */
export function complaintAbout(question: Question, value: string, check?: Check): string | null {
  if (/[\r\n]/.test(value)) return 'expected one line';
  if (question.choices && !question.choices.includes(value.trim().toLowerCase())) return `expected one of ${question.choices.join(', ')}`;
  const variable = question.variable === undefined ? undefined : variableNamed(question.variable);
  if (variable && (value.trim() !== '' || variable.emptyIsValue === true)) {
    const parsed = variable.parser.parse(value);
    if (!parsed.ok) return parsed.complaints.join('; ');
  }
  return check?.(value) ?? null;
}

/** The answer as the env file will hold it: the parser's own form (`Standard` → `standard`, `25mb` → `25MB`). */
export function normalised(question: Question, value: string): string {
  if (question.choices) return value.trim().toLowerCase();
  const variable = question.variable === undefined ? undefined : variableNamed(question.variable);
  if (!variable || (value.trim() === '' && variable.emptyIsValue !== true)) return value.trim() === '' ? '' : value;
  const parsed = variable.parser.parse(value);
  return parsed.ok ? variable.parser.format(parsed.value) : value;
}

/** A value as the terminal and the summary show it: secrets masked as everywhere else. */
export function shown(question: Question, value: string): string {
  const variable = question.variable === undefined ? undefined : variableNamed(question.variable);
  if (value === '') return '(empty)';
  return variable ? shownValue(variable, value) : value;
}

export class Answers implements AnswerSource {
  readonly #given: ReadonlyMap<string, string>;
  readonly #terminal: Terminal | null;
  readonly #yes: boolean;

  /** `given`: flag → value; `terminal`: null when stdin is not one; `yes`: take the defaults. */
  constructor(given: ReadonlyMap<string, string>, terminal: Terminal | null, yes: boolean) {
    this.#given = given;
    this.#terminal = terminal;
    this.#yes = yes;
  }

  asks(question: Question): boolean {
    return !this.#given.has(question.flag) && !this.#yes && this.#terminal !== null;
  }

  say(text: string): void {
    this.#terminal?.say(text);
  }

  async answer(question: Question, fallback: string, check?: Check): Promise<string> {
    const given = this.#given.get(question.flag);
    if (given !== undefined) {
      const complaint = complaintAbout(question, given, check);
      if (complaint !== null) throw new SetupUsageError(`${question.flag} ${JSON.stringify(shown(question, given))}: ${complaint}`);
      return normalised(question, given);
    }
    if (this.#yes) {
      const complaint = complaintAbout(question, fallback, check);
      if (complaint !== null) throw new SetupUsageError(`${question.flag}: the default ${JSON.stringify(shown(question, fallback))} will not do: ${complaint}`);
      return normalised(question, fallback);
    }
    if (this.#terminal === null) {
      throw new SetupUsageError(`${question.flag} is missing: without a terminal every answer is a flag (--yes takes the defaults for those not given)`);
    }
    return this.#ask(this.#terminal, question, fallback, check);
  }

  async #ask(terminal: Terminal, question: Question, fallback: string, check?: Check): Promise<string> {
    const doc = question.variable === undefined ? undefined : variableNamed(question.variable)?.doc;
    terminal.say('');
    if (question.intro) terminal.say(question.intro);
    if (doc) terminal.say(`${question.variable}: ${doc.replaceAll('`', '')}`);
    for (;;) {
      const typed = await terminal.ask(`${question.label} [${shown(question, fallback)}]: `, { secret: question.secret === true });
      // Enter keeps the default; `-` empties the value.
      const value = typed.trim() === '' ? fallback : typed.trim() === '-' ? '' : typed.trim();
      const complaint = complaintAbout(question, value, check);
      if (complaint === null) return normalised(question, value);
      terminal.say(`  ${complaint}`);
    }
  }
}
