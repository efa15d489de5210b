-- AlterTable: appended columns with constant defaults, so no table copy (instant on MariaDB 10.3+ and MySQL 8);
-- existing milestones get version '1' and no hash (the worker hashes their output when it needs to compare).
ALTER TABLE `sluice_milestones` ADD COLUMN `version` VARCHAR(64) NOT NULL DEFAULT '1',
    ADD COLUMN `output_hash` BINARY(16) NULL,
    ADD COLUMN `replaced` VARCHAR(64) NULL;

-- CreateIndex
CREATE INDEX `sluice_milestones_pipeline_stage_version_idx` ON `sluice_milestones`(`pipeline`, `stage`, `version`);

-- CreateTable
CREATE TABLE `sluice_recomputes` (
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `from_stage` VARCHAR(64) NOT NULL,
    `forced` BOOLEAN NOT NULL DEFAULT false,
    `run_id` VARCHAR(36) NOT NULL,
    `dispatches` INTEGER NOT NULL DEFAULT 1,
    `requested_at` DATETIME(3) NOT NULL,

    PRIMARY KEY (`pipeline`, `task_key`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_stage_versions` (
    `pipeline` VARCHAR(64) NOT NULL,
    `stage` VARCHAR(64) NOT NULL,
    `version` VARCHAR(64) NOT NULL,
    `first_seen_at` DATETIME(3) NOT NULL,

    PRIMARY KEY (`pipeline`, `stage`, `version`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Stages that have milestones already count as there from the pipeline's first milestone on: version '1', seen
-- since then (MIN per stage reads the (pipeline, stage, created_at) index, not the rows).
INSERT INTO `sluice_stage_versions` (`pipeline`, `stage`, `version`, `first_seen_at`)
SELECT s.`pipeline`, s.`stage`, '1', p.`first`
FROM (SELECT DISTINCT `pipeline`, `stage` FROM `sluice_milestones`) s
JOIN (
    SELECT `pipeline`, MIN(`first`) AS `first` FROM (
        SELECT `pipeline`, MIN(`created_at`) AS `first` FROM `sluice_milestones` GROUP BY `pipeline`, `stage`
    ) f GROUP BY `pipeline`
) p ON p.`pipeline` = s.`pipeline`;
