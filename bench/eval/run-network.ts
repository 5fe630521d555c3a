/**
 * One replay of a plan through a fresh network (service when participating, K gateways, a sink):
 * the figures of the run and every outcome. Shared by the campaign eval and the day-one eval.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeFigures, type RunFigures } from './figures.js';
import { startNetwork, type KeyRole, type Participation } from './network.js';
import type { Plan, PlanEvent } from './plan.js';
import { VARIABLES } from '../../src/config/table.js';
import { Progress } from './progress.js';
import { replay, type Outcome } from './replay.js';
import { startSink } from './sink.js';

export interface RunOptions {
  readonly root: string;
  readonly concurrency: number;
  readonly keyRole: KeyRole;
  readonly gatewayEnv: Record<string, string>;
  readonly lookupTimeoutMs: number;
  /** An engine file every gateway starts with (day one: the learnt history). */
  readonly localReputation?: string;
}

/** The reject score the gateways run with: the experiment's own, else the product's default. */
function rejectScoreOf(args: RunOptions): number {
  return Number(args.gatewayEnv.NIMBUS_REJECT_SCORE ?? VARIABLES.NIMBUS_REJECT_SCORE.default);
}

const log = (text: string): void => {
  process.stderr.write(`${text}\n`);
};

export async function runNetwork(plan: Plan, participation: Participation, workDir: string, args: RunOptions, cliPath: string, messageOf: (event: PlanEvent) => Buffer, label: string = participation): Promise<{ figures: RunFigures; outcomes: Outcome[]; seconds: number }> {
  mkdirSync(workDir, { recursive: true });
  const sink = await startSink(workDir);
  log(`${label}: starting ${participation === 'standard' ? 'the reputation service and ' : ''}${plan.gateways.length} gateways`);
  const network = await startNetwork({ root: args.root, cli: cliPath, keyRole: args.keyRole, gatewayEnv: args.gatewayEnv, workDir, gateways: plan.gateways, participation, sinkPort: sink.port, lookupTimeoutMs: args.lookupTimeoutMs, ...(args.localReputation === undefined ? {} : { localReputation: args.localReputation }) });
  const started = Date.now();
  try {
    const progress = new Progress(`replay (${label})`, plan.events.length);
    // Copies after the first, as the figures count them; with one copy per message (day one), every one.
    const firstCounted = plan.options.copies > 1 ? 1 : 0;
    let spamAfterFirst = 0;
    let caught = 0;
    let fps = 0;
    const { outcomes, stats } = await replay(plan, network, sink, {
      concurrency: args.concurrency,
      messageOf,
      onProgress(done, _total, outcome) {
        if (outcome.kind === 'spam' && !outcome.trap && (outcome.copy ?? 0) >= firstCounted && outcome.how !== 'error') {
          spamAfterFirst++;
          if (outcome.flagged) caught++;
        }
        if (outcome.kind === 'ham' && outcome.flagged) fps++;
        progress.update(done, `caught ${spamAfterFirst ? ((100 * caught) / spamAfterFirst).toFixed(1) : '0'}% FP ${fps}`);
      },
    });
    const seconds = Math.round((Date.now() - started) / 1000);
    progress.done(`${(plan.events.length / Math.max(seconds, 1)).toFixed(1)} messages/s`);
    // Kept with the work directory (--keep) for looking into single copies.
    writeFileSync(join(workDir, 'outcomes.jsonl'), outcomes.map((o) => {
      const event = plan.events[o.seq]!;
      return JSON.stringify({ ...o, file: event.kind === 'ham' ? event.message.file : plan.campaigns[event.campaign]!.message.file, ip: event.ip });
    }).join('\n'));
    const figures = computeFigures(plan, outcomes, stats, participation, rejectScoreOf(args));
    writeFileSync(join(workDir, 'figures.json'), JSON.stringify(figures, null, 2));
    return { figures, outcomes, seconds };
  } finally {
    await network.stop();
    await sink.close();
  }
}
