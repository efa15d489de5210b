// A pipeline's tables as every command sees them at start: the source (key kind, filter) and, when the
// pipeline has one, the user's result table. Any problem stops the command before anything is written.

import type { PipelineConfig } from '../config/config.js';
import type { Pool } from '../db/pool.js';
import { checkResults } from './results-table.js';
import { checkSource } from './source.js';
import type { SourceInfo } from './table-info.js';

export interface CheckOptions {
  /**
   * false: a result key that can merge or cut source keys is reported in `results.merging` instead of
   * refused (doctor counts the collisions before it refuses; status and the dashboard only read).
   */
  refuseMisfit?: boolean;
}

export async function checkPipelineTables(
  pool: Pool,
  pipeline: PipelineConfig,
  opts: CheckOptions = {},
): Promise<SourceInfo> {
  const src = await checkSource(pool, pipeline.source, pipeline.name);
  if (pipeline.results === undefined) return src;
  return { ...src, results: await checkResults(pool, pipeline.results, src, pipeline.name, opts) };
}
