-- CreateTable
CREATE TABLE `sluice_count_snapshots` (
    `pipeline` VARCHAR(64) NOT NULL,
    `source_rows` BIGINT NOT NULL,
    `done_rows` BIGINT NOT NULL,
    `stage_rows` JSON NOT NULL,
    `exact` BOOLEAN NOT NULL,
    `counted_at` DATETIME(3) NOT NULL,
    `took_ms` INTEGER NOT NULL,

    PRIMARY KEY (`pipeline`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateIndex
CREATE INDEX `sluice_dispatches_pipeline_dispatched_at_idx` ON `sluice_dispatches`(`pipeline`, `dispatched_at`);
