// A pipeline's tables as every command sees them at start: the source (key kind, filter) and, when the
// pipeline has one, the user's result table. Any problem stops the command before anything is written.

import type { PipelineConfig } from '../core/config.js';
import type { Pool } from './pool.js';
import { inspectResults } from './results-table.js';
import { inspectSource, type SourceInfo } from './source.js';

export async function inspectPipeline(pool: Pool, pipeline: PipelineConfig, name: string): Promise<SourceInfo> {
  const src = await inspectSource(pool, pipeline.source, name);
  if (pipeline.results === undefined) return src;
  return { ...src, results: await inspectResults(pool, pipeline.results, src.keyKind, name) };
}
