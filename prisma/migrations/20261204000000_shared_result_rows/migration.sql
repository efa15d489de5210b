-- AlterTable
ALTER TABLE `sluice_count_snapshots` ADD COLUMN `shared_rows` BIGINT NOT NULL DEFAULT 0;
