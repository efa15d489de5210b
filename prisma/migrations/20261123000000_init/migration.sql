-- Sluice's ledger tables. Task keys are the UTF-8 bytes of the key (VARBINARY), so keys differing only in
-- case, accents or trailing spaces stay distinct.

-- CreateTable
CREATE TABLE `sluice_results` (
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `output` JSON NULL,
    `attempts` INTEGER NOT NULL DEFAULT 1,
    `worker_id` VARCHAR(128) NULL,
    `started_at` DATETIME(3) NOT NULL,
    `finished_at` DATETIME(3) NOT NULL,
    `duration_ms` INTEGER NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_results_pipeline_finished_at_idx`(`pipeline`, `finished_at`),
    PRIMARY KEY (`pipeline`, `task_key`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_milestones` (
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `stage` VARCHAR(64) NOT NULL,
    `output` JSON NULL,
    `duration_ms` INTEGER NOT NULL,
    `attempt` INTEGER NOT NULL DEFAULT 1,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_milestones_pipeline_stage_created_at_idx`(`pipeline`, `stage`, `created_at`),
    PRIMARY KEY (`pipeline`, `task_key`, `stage`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_attempts` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `stage` VARCHAR(64) NOT NULL,
    `attempt` INTEGER NOT NULL,
    `error_class` VARCHAR(128) NOT NULL,
    `error_message` TEXT NOT NULL,
    `retriable` BOOLEAN NOT NULL,
    `worker_id` VARCHAR(128) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_attempts_pipeline_task_key_idx`(`pipeline`, `task_key`),
    INDEX `sluice_attempts_pipeline_created_at_idx`(`pipeline`, `created_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_dispatches` (
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `run_id` VARCHAR(36) NOT NULL,
    `topic` VARCHAR(249) NOT NULL,
    `dispatches` INTEGER NOT NULL DEFAULT 1,
    `dispatched_at` DATETIME(3) NOT NULL,

    PRIMARY KEY (`pipeline`, `task_key`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_dead_tasks` (
    `pipeline` VARCHAR(64) NOT NULL,
    `task_key` VARBINARY(2048) NOT NULL,
    `stage` VARCHAR(64) NULL,
    `error_class` VARCHAR(128) NOT NULL,
    `error_message` TEXT NOT NULL,
    `attempts` INTEGER NOT NULL,
    `payload` JSON NULL,
    `worker_id` VARCHAR(128) NULL,
    `quarantined_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_dead_tasks_pipeline_quarantined_at_idx`(`pipeline`, `quarantined_at`),
    PRIMARY KEY (`pipeline`, `task_key`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_demo_documents` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `title` VARCHAR(255) NOT NULL,
    `body` TEXT NOT NULL,
    `lang` VARCHAR(8) NOT NULL DEFAULT 'en',
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_demo_entities` (
    `id` INTEGER NOT NULL AUTO_INCREMENT,
    `name` VARCHAR(191) NOT NULL,
    `kind` VARCHAR(32) NOT NULL,

    UNIQUE INDEX `sluice_demo_entities_name_key`(`name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
