-- CreateTable
CREATE TABLE `sluice_processes` (
    `id` VARCHAR(128) NOT NULL,
    `host` VARCHAR(255) NOT NULL,
    `pid` INTEGER NOT NULL,
    `role` VARCHAR(16) NOT NULL,
    `pipeline` VARCHAR(64) NOT NULL,
    `info` JSON NULL,
    `started_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `heartbeat_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_processes_heartbeat_at_idx`(`heartbeat_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_resources` (
    `name` VARCHAR(64) NOT NULL,
    `learned_limit` DOUBLE NULL,
    `leader_id` VARCHAR(128) NULL,
    `leader_until` DATETIME(3) NULL,
    `state` JSON NULL,
    `overloads` BIGINT NOT NULL DEFAULT 0,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`name`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `sluice_resource_shares` (
    `resource` VARCHAR(64) NOT NULL,
    `process_id` VARCHAR(128) NOT NULL,
    `concurrency_share` INTEGER NOT NULL DEFAULT 0,
    `rate_share` DOUBLE NOT NULL DEFAULT 0,
    `demand` INTEGER NOT NULL DEFAULT 0,
    `in_flight` INTEGER NOT NULL DEFAULT 0,
    `samples` JSON NULL,
    `expires_at` DATETIME(3) NOT NULL,
    `updated_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_resource_shares_process_id_idx`(`process_id`),
    PRIMARY KEY (`resource`, `process_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
