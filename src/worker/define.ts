// Typed pipeline definitions: each stage receives the previous stage's output (the first one the task
// payload), and `ctx.outputs` holds every earlier stage's output by name.
//
//   const stages = pipeline<{ body: string }>()
//     .stage('ner', async (doc, ctx) => findEntities(doc.body, ctx.signal), { concurrency: 2, timeoutMs: 5000 })
//     .stage('lookup', async (entities) => lookUp(entities), { concurrency: 16 })
//     .build();

import type { StageConfig } from '../config/config.js';
import type { Logger } from '../core/logger.js';

export interface TaskInfo {
  /** The key's canonical text (docs/tables.md, "Key shapes"); a number for an integer key that fits exactly. */
  key: string | number;
  /** A composite key's parts, in `source.key` order. */
  parts?: Array<string | number>;
  payload: unknown;
  /** How many times the task was published (the envelope's attempt). */
  attempt: number;
}

export interface StageContext<Outputs> {
  task: TaskInfo;
  /** Outputs of the stages before this one, by stage name. */
  outputs: Outputs;
  /** This stage's attempt for this task, from 1 (counted across crashes from the attempt history). */
  attempt: number;
  /** Fires on the stage's timeout and on a forced shutdown: stop and throw. */
  signal: AbortSignal;
  log: Logger;
}

export interface StageOptions {
  /** Changed when the stage's code or model changes: done tasks it wrote become stale (`produce --recompute`). */
  version?: string | number;
  /** A fleet-wide resource (config `resources`) this stage's calls count against. */
  resource?: string;
  concurrency?: number;
  ratePerSecond?: number;
  timeoutMs?: number;
  retry?: { maxAttempts?: number; initialDelayMs?: number; maxDelayMs?: number };
}

export class PipelineBuilder<In, Outputs extends Record<string, unknown>> {
  readonly #stages: StageConfig[];

  constructor(stages: StageConfig[] = []) {
    this.#stages = stages;
  }

  stage<Name extends string, Out>(
    name: Name,
    run: (input: In, ctx: StageContext<Outputs>) => Promise<Out> | Out,
    options: StageOptions = {},
  ): PipelineBuilder<Out, Outputs & Record<Name, Out>> {
    const { version, ...rest } = options;
    const stage: StageConfig = { name, run, ...rest, ...(version === undefined ? {} : { version: String(version) }) };
    return new PipelineBuilder<Out, Outputs & Record<Name, Out>>([...this.#stages, stage]);
  }

  build(): StageConfig[] {
    return [...this.#stages];
  }
}

/** Starts a typed list of stages for tasks whose payload is `Payload`. */
export function pipeline<Payload>(): PipelineBuilder<Payload, Record<never, never>> {
  return new PipelineBuilder<Payload, Record<never, never>>();
}
