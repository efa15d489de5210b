-- AlterTable
ALTER TABLE `sluice_attempts` ADD COLUMN `superseded` BOOLEAN NOT NULL DEFAULT false;
