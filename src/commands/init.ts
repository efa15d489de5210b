// `sluice init` in a user's project: writes a commented sluice.config.ts for their table (never over an
// existing file), offers the package.json scripts, and prints the next commands.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIdentifier, isQualifiedIdentifier, IDENTIFIER_RULE } from '../core/identifiers.js';
import { UsageError } from '../core/errors.js';
import type { Command } from './command.js';
import { asText } from '../core/text.js';

const SCRIPTS: Record<string, string> = {
  'sluice:migrate': 'sluice migrate',
  'sluice:produce': 'sluice produce --pipeline',
  'sluice:fetch': 'sluice fetch --pipeline',
  'sluice:work': 'sluice work --pipeline',
  'sluice:status': 'sluice status --pipeline',
};

interface InitOptions {
  databaseUrl?: string;
  table: string;
  key: string;
  columns: string[];
  pipeline: string;
}

export function configText(o: InitOptions): string {
  const fields = o.columns.map((c) => `  ${c}: unknown;`).join('\n');
  const first = o.columns[0];
  const use = first === undefined ? 'ctx.task.key' : `row.${first}`;
  const columnList = o.columns.map((c) => `'${c}'`).join(', ');
  return `// sluice's configuration for this project, written by \`npx sluice init\`.
// Settings here override sluice's defaults; environment variables (DATABASE_URL, SLUICE_KAFKA_BROKERS, ...)
// override this file, and command-line flags override both. Every setting: docs/configuration.md
// in sluice's repository.
import { defineConfig, NonRetriableError, pipeline } from 'sluice';

/** One task's payload: the columns listed in source.columns, as the database returns them. */
interface ${pascal(o.pipeline)}Row {
${fields}
}

// The work to do per row, one stage per call to a slow or fragile service. Each stage gets the previous
// stage's output (the first one gets the row); a stage that has succeeded is never run again for that row.
const stages = pipeline<${pascal(o.pipeline)}Row>()
  .stage(
    'example',
    async (row, ctx) => {
      // Call your service here and pass ctx.signal, so a timeout or a shutdown can cancel the call.
      const text = String(${use} ?? '');
      if (text === '') throw new NonRetriableError('nothing to process'); // quarantined at once, not retried
      return { length: text.length };
    },
    // concurrency: calls in flight at once per worker process; timeoutMs and retry: per call.
    { concurrency: 4, timeoutMs: 30_000, retry: { maxAttempts: 3 } },
  )
  .build();

export default defineConfig({
  // Where sluice keeps its ledger (tables named sluice_*, created by \`npx sluice migrate\`): set DATABASE_URL,
  // or write the URL here. Left empty, commands stop and say so: sluice never picks a database by itself.
  // The source table may live in another database on the same server: source.table 'otherdb.table'.
  database: { url: process.env.DATABASE_URL ?? ${JSON.stringify(o.databaseUrl ?? '').replace(/"/g, "'")} },
  kafka: { brokers: (process.env.SLUICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',') },
  pipelines: {
    ${o.pipeline}: {
      // Every row of the table is a task; the key must be NOT NULL and unique.
      source: { table: '${o.table}', key: ${keyLiteral(o.key)}, columns: [${columnList}] },
      stages,
    },
  },
});
`;
}

/** The config's key: 'id', or ['tenant_id', 'id'] for a composite key. */
function keyLiteral(key: string): string {
  const cols = key.split(',');
  return cols.length === 1 ? `'${key}'` : `[${cols.map((c) => `'${c}'`).join(', ')}]`;
}

function pascal(name: string): string {
  return name.replace(/(^|[_-])([a-z0-9])/g, (_m, _s, c: string) => c.toUpperCase());
}

function options(values: Record<string, unknown>): InitOptions {
  const table = values.table;
  if (typeof table !== 'string')
    throw new UsageError(
      '--table is required (the source table: one row per task)',
      'e.g. npx sluice init --table products --key id --columns name,description',
    );
  if (!isQualifiedIdentifier(table))
    throw new UsageError(
      `--table must be an SQL identifier (or database.table): ${IDENTIFIER_RULE}, got '${asText(table)}'`,
    );
  const key = typeof values.key === 'string' ? values.key : 'id';
  // A composite key as its columns joined by commas, in the index's order.
  if (!key.split(',').every(isIdentifier))
    throw new UsageError(
      `--key must be an SQL identifier (or a composite key's columns, a,b): ${IDENTIFIER_RULE}, got '${asText(key)}'`,
    );
  const columns =
    typeof values.columns === 'string'
      ? values.columns
          .split(',')
          .map((c) => c.trim())
          .filter((c) => c !== '')
      : [];
  for (const c of columns)
    if (!isIdentifier(c))
      throw new UsageError(`--columns: '${asText(c)}' is not an SQL identifier (${IDENTIFIER_RULE})`);
  const base = table
    .split('.')
    .pop()!
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '_');
  const pipeline =
    typeof values.pipeline === 'string'
      ? values.pipeline
      : /^[a-z]/.test(base)
        ? base.slice(0, 64)
        : `p_${base}`.slice(0, 64);
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(pipeline))
    throw new UsageError(
      `--pipeline must be lowercase letters, digits, - and _, starting with a letter, got '${pipeline}'`,
    );
  const databaseUrl = typeof values['database-url'] === 'string' ? values['database-url'] : undefined;
  return { table, key, columns, pipeline, ...(databaseUrl === undefined ? {} : { databaseUrl }) };
}

/** Adds the sluice scripts that the project's package.json does not have yet; returns their names. */
function addScripts(dir: string, pipeline: string): string[] {
  const file = join(dir, 'package.json');
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { scripts?: Record<string, string> };
  pkg.scripts ??= {};
  const added: string[] = [];
  for (const [name, cmd] of Object.entries(SCRIPTS)) {
    if (pkg.scripts[name] !== undefined) continue;
    pkg.scripts[name] = cmd.endsWith('--pipeline') ? `${cmd} ${pipeline}` : cmd;
    added.push(name);
  }
  writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
  return added;
}

export const initCommand: Command = {
  name: 'init',
  summary: 'write a sluice.config.ts for your table in this project (never overwrites a file)',
  usage: '--table <table> [--key <column>[,<column>...]] [--columns a,b,c] [--pipeline <name>] [--scripts]',
  details: ['Example: npx sluice init --table products --key id --columns name,description --scripts'],
  options: {
    table: { type: 'string' },
    key: { type: 'string' },
    columns: { type: 'string' },
    pipeline: { type: 'string' },
    scripts: { type: 'boolean' },
  },
  optionHelp: {
    table: 'the source table, one row per task (or database.table)',
    key: 'its unique, NOT NULL key column (default id); a composite key as its columns, a,b',
    columns: 'columns copied into each task, comma-separated',
    pipeline: 'the pipeline name (default: from the table name)',
    scripts: 'also add sluice:* scripts to package.json (existing ones are kept)',
  },
  run({ values, cwd, out }) {
    // A throw inside the executor becomes the rejection, as in an async function.
    return new Promise((resolve) => resolve(initProject(values, cwd, out)));
  },
};

function initProject(values: Record<string, unknown>, cwd: string, out: (line: string) => void): number {
  const o = options(values);
  const file = join(cwd, 'sluice.config.ts');
  if (existsSync(file))
    throw new UsageError(
      `${file} exists already; init never overwrites it`,
      'edit it, or remove it and run init again',
    );
  writeFileSync(file, configText(o), { flag: 'wx' });
  out(`wrote ${file} (pipeline ${o.pipeline} on table ${o.table})`);
  const hasPackage = existsSync(join(cwd, 'package.json'));
  if (values.scripts === true && hasPackage) {
    const added = addScripts(cwd, o.pipeline);
    out(
      added.length > 0 ? `added to package.json: ${added.join(', ')}` : 'package.json has the sluice scripts already',
    );
  } else if (hasPackage) {
    out('package.json scripts you may want (or run init with --scripts to add them):');
    for (const [name, cmd] of Object.entries(SCRIPTS))
      out(`  "${name}": "${cmd.endsWith('--pipeline') ? `${cmd} ${o.pipeline}` : cmd}"`);
  }
  out('next:');
  out('  export DATABASE_URL=mysql://user:password@host:3306/database   # or edit database.url in the file');
  out(`  npx sluice doctor --pipeline ${o.pipeline}     # checks the database, the table and Kafka`);
  out('  npx sluice migrate                         # creates sluice_* tables beside yours');
  out(`  npx sluice produce --pipeline ${o.pipeline}    # publishes every row without a result`);
  out(`  npx sluice fetch --pipeline ${o.pipeline} & npx sluice work --pipeline ${o.pipeline}`);
  out(`  npx sluice status --pipeline ${o.pipeline} --check`);
  return 0;
}
