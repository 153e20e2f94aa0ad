import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

/** Reads a JSON file; undefined when it does not exist or is not (yet) complete JSON. */
export function readJson<T>(file: string): T | undefined {
  // Many of these files are usually absent (final.json, terminating.json): a failed open costs an exception, a failed
  // existence check does not, and watchers ask for them for every worker at every poll.
  if (!existsSync(file)) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/** Writes JSON so that readers on other threads see the old or the new file, never half of one. */
export function writeJsonAtomic(file: string, value: unknown, mode = 0o644): void {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode });
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}
