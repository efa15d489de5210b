// npm run docs:config: writes the README's configuration table from the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigTable } from '../src/core/config-docs.js';

const file = new URL('../README.md', import.meta.url);
writeFileSync(file, withConfigTable(readFileSync(file, 'utf8')));
console.log('README.md: configuration table written');
