-- The demo's tables no longer belong in every database sluice migrates (a user's application database):
-- `sluice demo` creates them with its own migration (prisma/demo-migrations).
DROP TABLE IF EXISTS `sluice_demo_entities`;
DROP TABLE IF EXISTS `sluice_demo_documents`;
