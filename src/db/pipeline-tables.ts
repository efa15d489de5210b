// A pipeline's tables as every command sees them at start: the source (key kind, filter) and, when the
// pipeline has one, the user's result table. Any problem stops the command before anything is written.

import type { PipelineConfig } from '../core/config.js';
import type { Pool } from './pool.js';
import { inspectResults } from './results-table.js';
import { inspectSource, type SourceInfo } from './source.js';

export interface InspectOptions {
  /**
   * false: a result key that can merge or cut source keys is reported in `results.merging` instead of
   * refused (doctor counts the collisions before it refuses; status and the dashboard only read).
   */
  refuseMisfit?: boolean;
}

export async function inspectPipeline(pool: Pool, pipeline: PipelineConfig, name: string, opts: InspectOptions = {}): Promise<SourceInfo> {
  const src = await inspectSource(pool, pipeline.source, name);
  if (pipeline.results === undefined) return src;
  return { ...src, results: await inspectResults(pool, pipeline.results, src, name, opts) };
}
