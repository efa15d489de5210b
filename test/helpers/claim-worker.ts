// A separate worker process for the claim race test: claims segments until none are left, printing each
// claimed segment name, and holds each claim a moment so that claims overlap in time.
import { SpoolClaimer } from '../../src/spool/claim.js';
import { spoolPaths } from '../../src/spool/layout.js';

const [dir, pipeline, id] = process.argv.slice(2);
const claimer = new SpoolClaimer(spoolPaths(dir!, pipeline!), id!, 60_000);
for (let c = await claimer.claim(); c !== null; c = await claimer.claim()) {
  process.stdout.write(`${c.segment}\n`);
  await new Promise((r) => setTimeout(r, 1));
  await claimer.complete(c);
}
