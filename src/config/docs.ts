// The configuration table of docs/configuration.md, made from the schema (npm run docs:config writes it; a
// unit test checks the page is in step with the schema).

import { settings } from './settings.js';
import { asText } from '../core/text.js';

export const TABLE_START = '<!-- config-table:start (npm run docs:config) -->';
export const TABLE_END = '<!-- config-table:end -->';

const code = (s: string): string => `\`${s}\``;

export function configTable(): string {
  const rows = settings().map((s) => {
    const shown =
      s.shownDefault ??
      (s.defaultValue === undefined
        ? 'none'
        : code(Array.isArray(s.defaultValue) ? s.defaultValue.join(',') : asText(s.defaultValue)));
    const flag =
      s.flag === undefined
        ? ''
        : `${code(`--${s.flag}`)}${s.commands === undefined ? '' : ` (${s.commands.join(', ')})`}`;
    return (
      `| ${code(s.path)} | ${s.env === undefined ? '' : code(s.env)} | ` +
      `${flag} | ${shown} | ${s.doc.replace(/\|/g, '\\|')} |`
    );
  });
  return [
    '| setting | environment | flag | default | what it does |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '| config file | `SLUICE_CONFIG` | `--config` | ' +
      '`sluice.config.{ts,mts,js,mjs}` in the working directory or the nearest ' +
      'parent | |',
  ].join('\n');
}

/** The page with its configuration table replaced by the current one. */
export function withConfigTable(readme: string): string {
  const a = readme.indexOf(TABLE_START);
  const b = readme.indexOf(TABLE_END);
  if (a < 0 || b < a) throw new Error(`docs/configuration.md has no ${TABLE_START} ... ${TABLE_END} markers`);
  return `${readme.slice(0, a + TABLE_START.length)}\n${configTable()}\n${readme.slice(b)}`;
}
