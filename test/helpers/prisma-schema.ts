// Reads the subset of the Prisma schema language that sluice's schema uses and derives the MySQL tables
// Prisma would create for it. Anything outside that subset throws, so the drift check can never pass by
// silently ignoring a construct it does not understand.

export interface ExpectedColumn {
  name: string;
  /** information_schema COLUMN_TYPE, normalised (no integer display widths). */
  type: string;
  nullable: boolean;
  autoIncrement: boolean;
  isJson: boolean;
}

export interface ExpectedIndex {
  name: string;
  unique: boolean;
  columns: string[];
}

export interface ExpectedTable {
  model: string;
  table: string;
  columns: ExpectedColumn[];
  indexes: ExpectedIndex[];
}

const SCALARS = new Set(['String', 'Int', 'BigInt', 'Boolean', 'DateTime', 'Json', 'Float', 'Bytes']);
const FIELD_ATTRS = /^@(id|unique|updatedAt|default\(.*\)|map\("[^"]+"\)|db\.\w+(\([^)]*\))?)$/;

function columnType(model: string, field: string, type: string, db: string | undefined): string {
  if (db !== undefined) {
    const m = /^(\w+)(?:\(([^)]*)\))?$/.exec(db);
    if (m === null) throw new Error(`${model}.${field}: cannot read @db.${db}`);
    const [, name, args] = m;
    const base = name!.toLowerCase();
    return args === undefined ? base : `${base}(${args.replace(/\s+/g, '')})`;
  }
  switch (type) {
    case 'String':
      return 'varchar(191)';
    case 'Int':
      return 'int';
    case 'BigInt':
      return 'bigint';
    case 'Boolean':
      return 'tinyint(1)';
    case 'DateTime':
      return 'datetime(3)';
    case 'Json':
      return 'json';
    case 'Float':
      return 'double';
    case 'Bytes':
      return 'longblob';
    default:
      throw new Error(`${model}.${field}: type ${type} is not supported by the drift check`);
  }
}

function list(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
}

/** Splits a line into tokens, keeping parenthesised and bracketed groups whole. */
function tokens(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === '(' || ch === '[')) depth++;
    if (!quoted && (ch === ')' || ch === ']')) depth--;
    if (!quoted && depth === 0 && /\s/.test(ch)) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

export function expectedTables(schema: string): ExpectedTable[] {
  const text = schema.replace(/\/\/.*$/gm, '');
  if (/^\s*(enum|view|type)\s+\w+\s*\{/m.test(text))
    throw new Error('enums, views and composite types are not supported by the drift check');
  const tables: ExpectedTable[] = [];
  for (const m of text.matchAll(/^\s*model\s+(\w+)\s*\{([^}]*)\}/gm)) {
    const model = m[1]!;
    const body = m[2]!
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    let table = model;
    const fields: Array<{ name: string; col: ExpectedColumn; id: boolean; unique: boolean }> = [];
    const block: string[] = [];
    for (const line of body) {
      if (line.startsWith('@@')) {
        block.push(line);
        continue;
      }
      const [name, rawType, ...attrs] = tokens(line);
      if (name === undefined || rawType === undefined) throw new Error(`${model}: cannot read line '${line}'`);
      const nullable = rawType.endsWith('?');
      const type = rawType.replace(/\?$/, '');
      if (type.endsWith('[]') || !SCALARS.has(type))
        throw new Error(`${model}.${name}: ${rawType} (relations and lists) is not supported by the drift check`);
      for (const a of attrs)
        if (!FIELD_ATTRS.test(a))
          throw new Error(`${model}.${name}: attribute ${a} is not supported by the drift check`);
      const mapped = attrs.map((a) => /^@map\("([^"]+)"\)$/.exec(a)?.[1]).find((x) => x !== undefined) ?? name;
      const db = attrs.map((a) => /^@db\.(.+)$/.exec(a)?.[1]).find((x) => x !== undefined);
      fields.push({
        name,
        id: attrs.includes('@id'),
        unique: attrs.includes('@unique'),
        col: {
          name: mapped,
          type: columnType(model, name, type, db),
          nullable,
          autoIncrement: attrs.includes('@default(autoincrement())'),
          isJson: type === 'Json',
        },
      });
    }
    const colOf = (field: string): string => {
      const f = fields.find((x) => x.name === field);
      if (f === undefined) throw new Error(`${model}: block attribute names unknown field ${field}`);
      return f.col.name;
    };
    const indexes: ExpectedIndex[] = [];
    for (const f of fields) {
      if (f.id) indexes.push({ name: 'PRIMARY', unique: true, columns: [f.col.name] });
    }
    const pending: Array<{ kind: 'id' | 'unique' | 'index'; columns: string[]; map?: string }> = [];
    for (const line of block) {
      const b = /^@@(id|unique|index|map)\((.*)\)$/.exec(line);
      if (b === null) throw new Error(`${model}: block attribute ${line} is not supported by the drift check`);
      const [, kind, args] = b;
      if (kind === 'map') {
        table = /^"([^"]+)"$/.exec(args!.trim())?.[1] ?? table;
        continue;
      }
      const cols = /^\[([^\]]*)\]/.exec(args!.trim());
      if (cols === null) throw new Error(`${model}: cannot read ${line}`);
      const map = /map:\s*"([^"]+)"/.exec(args!)?.[1];
      pending.push({ kind: kind as 'id' | 'unique' | 'index', columns: list(cols[1]!).map(colOf), map });
    }
    for (const f of fields) if (f.unique) pending.push({ kind: 'unique', columns: [f.col.name] });
    for (const p of pending) {
      if (p.kind === 'id') indexes.push({ name: 'PRIMARY', unique: true, columns: p.columns });
      else {
        const suffix = p.kind === 'unique' ? 'key' : 'idx';
        indexes.push({
          name: p.map ?? `${table}_${p.columns.join('_')}_${suffix}`,
          unique: p.kind === 'unique',
          columns: p.columns,
        });
      }
    }
    tables.push({ model, table, columns: fields.map((f) => f.col), indexes });
  }
  if (tables.length === 0) throw new Error('no models found in the schema');
  return tables;
}
