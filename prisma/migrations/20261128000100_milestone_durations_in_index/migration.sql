-- CreateIndex
CREATE INDEX `sluice_milestones_pipeline_stage_created_at_duration_ms_idx` ON `sluice_milestones`(`pipeline`, `stage`, `created_at`, `duration_ms`);

-- DropIndex
DROP INDEX `sluice_milestones_pipeline_stage_created_at_idx` ON `sluice_milestones`;
