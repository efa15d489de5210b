// The demo data set: documents that mention entities from a small catalogue, and the catalogue itself.

export interface DemoEntity {
  name: string;
  kind: 'person' | 'place' | 'organisation';
}

const PEOPLE = [
  'Ada Lovelace',
  'Alan Turing',
  'Grace Hopper',
  'Katherine Johnson',
  'Edsger Dijkstra',
  'Barbara Liskov',
  'Donald Knuth',
  'Margaret Hamilton',
  'John McCarthy',
  'Frances Allen',
  'Claude Shannon',
  'Radia Perlman',
];
const PLACES = [
  'Lisbon',
  'Nairobi',
  'Osaka',
  'Valparaiso',
  'Tromso',
  'Montreal',
  'Kraków',
  'Hobart',
  'Marrakesh',
  'Reykjavík',
];
const ORGS = ['Bell Labs', 'Xerox PARC', 'CERN', 'Bletchley Park', 'Project MAC', 'Los Alamos'];

export const ENTITIES: DemoEntity[] = [
  ...PEOPLE.map((name) => ({ name, kind: 'person' as const })),
  ...PLACES.map((name) => ({ name, kind: 'place' as const })),
  ...ORGS.map((name) => ({ name, kind: 'organisation' as const })),
];

/** Names that appear in documents but are not in the catalogue: `lookup` finds nothing for them. */
const UNKNOWN = ['Ludwig Wittgenstein', 'Ouagadougou', 'Initech'];

/** A deterministic document for id `i` (same text on every machine). */
export function demoDocument(i: number): { title: string; body: string; lang: string } {
  const pick = <T>(xs: readonly T[], salt: number): T => xs[(i * 7919 + salt * 104729) % xs.length]!;
  const a = pick(PEOPLE, 1);
  const b = pick(PLACES, 2);
  const c = pick(ORGS, 3);
  const extra = i % 10 === 0 ? ` A note mentions ${pick(UNKNOWN, 4)}.` : '';
  return {
    title: `Report ${i}: ${a} in ${b}`,
    body: `In report ${i}, ${a} travelled to ${b} to meet colleagues from ${c}. The visit was long remembered.${extra}`,
    lang: 'en',
  };
}
