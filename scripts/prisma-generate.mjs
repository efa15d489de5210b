// Runs `prisma generate` with the schema-engine stub, so `npm install` works without Prisma's binary CDN.
// A user who has the real engine can set PRISMA_SCHEMA_ENGINE_BINARY themselves and it is kept.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stub = join(root, 'scripts', 'prisma-engine-stub.sh');
const cli = join(root, 'node_modules', 'prisma', 'build', 'index.js');
if (!existsSync(cli)) {
  // Installed as a dependency without dev dependencies: the generated client is not needed there.
  process.exit(0);
}
chmodSync(stub, 0o755);
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? stub,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  CHECKPOINT_DISABLE: '1',
};
const r = spawnSync(process.execPath, [cli, 'generate', '--schema', join(root, 'prisma', 'schema.prisma')], {
  cwd: root,
  env,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
