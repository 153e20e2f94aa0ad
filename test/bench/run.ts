/**
 * Runs the benchmarks: `npm run bench` runs every test/bench/*.bench.ts, `npm run bench <name>` runs <name>.bench.ts.
 * Each runs in its own Node process (same loader flags as this one), so one bench's threads and heap do not skew
 * another's numbers.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const available = (await readdir(here)).filter((f) => f.endsWith('.bench.ts')).map((f) => basename(f, '.bench.ts')).sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(`unknown bench: ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted.length > 0 ? wanted : available) {
  console.log(`# bench ${name}`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, join(here, `${name}.bench.ts`)], { stdio: 'inherit' });
    child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal === null ? 1 : 128)));
  });
  if (code !== 0) {
    console.error(`# bench ${name} failed with exit code ${code}`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
