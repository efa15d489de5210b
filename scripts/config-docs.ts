// npm run docs:config: writes the configuration table of docs/configuration.md from the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigTable } from '../src/config/docs.js';

const file = new URL('../docs/configuration.md', import.meta.url);
writeFileSync(file, withConfigTable(readFileSync(file, 'utf8')));
console.log('docs/configuration.md: configuration table written');
