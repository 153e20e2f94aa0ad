import { chmod, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomInt } from 'node:crypto';

/** One file of a Secret, ConfigMap or projected volume: its path inside the volume, content and mode. */
export interface VolumeFile {
  path: string;
  content: Buffer;
  mode: number;
}

const DATA_DIR = '..data';
const DATA_DIR_TMP = '..data_tmp';

/**
 * Writes a volume's files the way the kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go) does, so a process in
 * the container sees either the old or the new set of files, never a mix:
 *   <dir>/..<timestamp>/<files>     the payload of one version
 *   <dir>/..data -> ..<timestamp>   swapped atomically with rename(2)
 *   <dir>/<top-level name> -> ..data/<top-level name>
 * Returns false when the payload equals the one written last (nothing is touched, no inotify event fires).
 */
export async function writeAtomically(dir: string, files: VolumeFile[]): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const current = await readlink(path.join(dir, DATA_DIR)).catch(() => undefined);
  if (current !== undefined && (await samePayload(path.join(dir, current), files))) return false;

  // The kubelet's name for a version: ioutil.TempDir(dir, "..2006_01_02_15_04_05.").
  const stamp = `..${new Date().toISOString().slice(0, 19).replace(/[-T:]/g, '_')}.${randomInt(1e9)}`;
  const versionDir = path.join(dir, stamp);
  for (const file of files) {
    const target = path.join(versionDir, file.path);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, file.content);
    await chmod(target, file.mode);
  }
  await mkdir(versionDir, { recursive: true });
  await rm(path.join(dir, DATA_DIR_TMP), { force: true });
  await symlink(stamp, path.join(dir, DATA_DIR_TMP));
  await rename(path.join(dir, DATA_DIR_TMP), path.join(dir, DATA_DIR));

  const topLevel = new Set(files.map((file) => file.path.split('/')[0] ?? file.path));
  for (const name of topLevel) {
    await symlink(path.join(DATA_DIR, name), path.join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..')) {
      if (entry !== DATA_DIR && entry !== stamp) await rm(path.join(dir, entry), { recursive: true, force: true });
    } else if (!topLevel.has(entry)) {
      await rm(path.join(dir, entry), { force: true });
    }
  }
  return true;
}

async function samePayload(versionDir: string, files: VolumeFile[]): Promise<boolean> {
  const listed = await listFiles(versionDir).catch(() => undefined);
  if (listed === undefined || listed.length !== files.length) return false;
  for (const file of files) {
    const target = path.join(versionDir, file.path);
    const content = await readFile(target).catch(() => undefined);
    if (content === undefined || !content.equals(file.content)) return false;
    if (((await stat(target)).mode & 0o7777) !== file.mode) return false;
  }
  return true;
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), `${prefix}${entry.name}/`)));
    else out.push(`${prefix}${entry.name}`);
  }
  return out;
}
