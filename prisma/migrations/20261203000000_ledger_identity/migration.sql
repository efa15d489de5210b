-- AlterTable
ALTER TABLE `sluice_dispatches` ADD COLUMN `kafka_partition` INTEGER NULL,
    ADD COLUMN `kafka_offset` BIGINT NULL;

-- CreateTable
CREATE TABLE `sluice_ledger` (
    `id` VARCHAR(36) NOT NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- The ledger's id, once (a random UUID: two databases never share one unless one is a copy of the other).
INSERT INTO `sluice_ledger` (`id`) VALUES (UUID());
