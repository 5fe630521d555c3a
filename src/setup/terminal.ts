/**
 * The terminal `nimbus setup` talks to: node:readline on a TTY, one question at a time. A secret
 * (the service key) is typed without echo: readline writes the line it edits to an output that is
 * muted while the secret is typed. Ctrl-C or end of input abandons the dialogue (SetupAbandoned),
 * and nothing is written.
 */
import { createInterface, type Interface } from 'node:readline/promises';
import { Writable } from 'node:stream';

export class SetupAbandoned extends Error {
  constructor() {
    super('abandoned: nothing was written');
  }
}

export interface Terminal {
  /** Asks and resolves with the line typed (without its newline). */
  ask(prompt: string, options?: { readonly secret?: boolean }): Promise<string>;
  /** Prints lines between questions. */
  say(text: string): void;
  close(): void;
}

export function openTerminal(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Terminal {
  let muted = false;
  // What readline echoes goes through here: dropped while a secret is typed.
  const echo = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (!muted) output.write(chunk);
      done();
    },
  });
  // readline wraps by the width; a pseudo-terminal without a size says 0.
  Object.assign(echo, { columns: (output as { columns?: number }).columns || 80 });
  const rl: Interface = createInterface({ input, output: echo, terminal: true });
  const abandon = new AbortController();
  rl.on('SIGINT', () => abandon.abort());
  rl.on('close', () => abandon.abort());
  return {
    async ask(prompt, options = {}) {
      if (abandon.signal.aborted) throw new SetupAbandoned();
      try {
        if (!options.secret) return await rl.question(prompt, { signal: abandon.signal });
        output.write(prompt);
        muted = true;
        try {
          return await rl.question('', { signal: abandon.signal });
        } finally {
          muted = false;
          output.write('\n');
        }
      } catch (error) {
        if (abandon.signal.aborted) throw new SetupAbandoned();
        throw error;
      }
    },
    say(text) {
      output.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    close() {
      rl.close();
    },
  };
}
