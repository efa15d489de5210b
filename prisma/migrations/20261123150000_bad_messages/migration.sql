-- CreateTable
CREATE TABLE `sluice_bad_messages` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `pipeline` VARCHAR(64) NOT NULL,
    `topic` VARCHAR(249) NOT NULL,
    `kafka_partition` INTEGER NOT NULL,
    `kafka_offset` BIGINT NOT NULL,
    `reason` VARCHAR(64) NOT NULL,
    `detail` TEXT NOT NULL,
    `message_key` VARBINARY(2048) NULL,
    `size` INTEGER NOT NULL,
    `fetcher_id` VARCHAR(128) NULL,
    `spool_file` VARCHAR(255) NULL,
    `created_at` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `sluice_bad_messages_pipeline_created_at_idx`(`pipeline`, `created_at`),
    UNIQUE INDEX `sluice_bad_messages_topic_kafka_partition_kafka_offset_key`(`topic`, `kafka_partition`, `kafka_offset`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
