#!/bin/sh
# Stands in for Prisma's schema-engine binary, which cannot be downloaded on machines without internet.
# `prisma generate` and `prisma validate` only need the path to exist; anything that would really use the
# engine (migrate, db push, introspection) fails here with a pointer to sluice's own runner.
case "$1" in
  --version|-V) echo "schema-engine-cli 0.0.0-sluice-stub"; exit 0 ;;
esac
echo "Prisma's schema engine is not installed (offline machine). Apply migrations with: npm run db:migrate" >&2
exit 1
