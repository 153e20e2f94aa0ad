import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { hostError } from '../errors.ts';

/** Most files and folders, together, a plugin package copy may hold; a hostile package must not fill the disk. */
export const MAX_PACKAGE_FILES = 20_000;

/** Most bytes of file content a plugin package copy may hold. */
export const MAX_PACKAGE_BYTES = 512 * 1024 * 1024;

/** What {@link copyPluginPackage} wrote. */
export interface CopiedPackage {
  /** Regular files written (a file reached through several symlinks counts once per path). */
  files: number;
  /** Bytes of file content written. */
  bytes: number;
}

const CHUNK_BYTES = 64 * 1024;

const isInside = (root: string, path: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);

function specialKind(st: Stats): string {
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a fifo';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  return 'neither a file, a folder nor a symlink';
}

/**
 * Copies a plugin package (with its own node_modules) to `destDir`, for a restricted sandbox to see read-only. The copy
 * holds no symlink: one whose real path stays inside the package's real root is copied as the file or folder it
 * points to (npm's node_modules/.bin links, pnpm's layout), so the package keeps working; one that leaves the package
 * is refused, so a link to the admin token file cannot carry it into the sandbox. Refuses, all with
 * `HOST_ERR_PLUGIN_PACKAGE_UNSAFE`: a symlink that leaves the package, dangles or loops back to a folder it is in;
 * a socket, fifo or device; more than {@link MAX_PACKAGE_FILES} files and folders or {@link MAX_PACKAGE_BYTES} bytes.
 * Skips `.git` folders and files only. File modes keep their owner/group/other read and execute bits, nothing else.
 * A dry run refuses before anything is written; should the package change meanwhile, the copy refuses and removes
 * what it wrote.
 *
 * A hard link cannot be told from a file: one to a file outside the package, which only someone already on the host
 * can make, is copied like any file.
 *
 * @param sourceDir the installed package; it may itself be a symlink (an npm workspace link).
 * @param destDir must not exist, or be an empty folder; it must not be inside the package.
 * @param subject added to every error's details (plugin, instance, version: STYLE 4).
 */
export async function copyPluginPackage(sourceDir: string, destDir: string, subject: Readonly<Record<string, unknown>> = {}): Promise<CopiedPackage> {
  const root = await realpath(sourceDir);
  const dest = resolve(destDir);
  const created = await mkdir(dest, { recursive: true });
  if (isInside(root, await realpath(dest))) {
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    throw new Error(`copyPluginPackage: ${dest} is inside the package ${root}`);
  }
  if ((await readdir(dest)).length > 0) throw new Error(`copyPluginPackage: ${dest} is not empty`);
  // A dry run first refuses most hostile packages before a byte is written; the copy checks everything again.
  await new PackageCopier(root, undefined, subject).copyDir(root, '', [root]);
  const copier = new PackageCopier(root, dest, subject);
  try {
    await copier.copyDir(root, '', [root]);
  } catch (error) {
    await Promise.all((await readdir(dest)).map((name) => rm(join(dest, name), { recursive: true, force: true })));
    throw error;
  }
  return { files: copier.files, bytes: copier.bytes };
}

class PackageCopier {
  files = 0;
  bytes = 0;
  #entries = 0;
  readonly #root: string;
  /** Undefined for a dry run, which checks and counts but writes nothing. */
  readonly #dest: string | undefined;
  readonly #subject: Readonly<Record<string, unknown>>;

  constructor(root: string, dest: string | undefined, subject: Readonly<Record<string, unknown>>) {
    this.#root = root;
    this.#dest = dest;
    this.#subject = subject;
  }

  /**
   * Copies the folder whose real path is `realDir` to `rel` in the copy. `ancestors` are the real paths of the folders
   * being copied above it: a symlink to one of them (or to a folder holding one) would be copied forever.
   */
  async copyDir(realDir: string, rel: string, ancestors: readonly string[]): Promise<void> {
    const names = (await readdir(realDir)).sort();
    for (const name of names) {
      if (name === '.git') continue;
      const source = join(realDir, name);
      const target = rel === '' ? name : join(rel, name);
      const st = await lstat(source);
      if (st.isSymbolicLink()) await this.#copyLink(source, target, ancestors);
      else if (st.isDirectory()) await this.#enterDir(source, target, ancestors);
      else if (st.isFile()) await this.#copyFile(source, target, st);
      else throw this.#refuse(`${target} is ${specialKind(st)}`, { path: target });
    }
  }

  async #enterDir(realDir: string, rel: string, ancestors: readonly string[]): Promise<void> {
    this.#count(rel);
    if (this.#dest !== undefined) await mkdir(join(this.#dest, rel), { mode: 0o755 });
    await this.copyDir(realDir, rel, [...ancestors, realDir]);
  }

  async #copyLink(source: string, rel: string, ancestors: readonly string[]): Promise<void> {
    const link = await readlink(source);
    let real: string;
    try {
      real = await realpath(source);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw this.#refuse(`symlink ${rel} -> ${link} cannot be resolved (${code})`, { path: rel, target: link });
    }
    if (!isInside(this.#root, real)) {
      throw this.#refuse(`symlink ${rel} -> ${link} leaves the package (it resolves to ${real})`, { path: rel, target: link, resolved: real });
    }
    const st = await stat(real);
    if (st.isDirectory()) {
      if (ancestors.some((dir) => isInside(real, dir))) {
        throw this.#refuse(`symlink ${rel} -> ${link} points to a folder it is itself in`, { path: rel, target: link, resolved: real });
      }
      await this.#enterDir(real, rel, ancestors);
    } else if (st.isFile()) {
      await this.#copyFile(real, rel, st);
    } else {
      throw this.#refuse(`symlink ${rel} -> ${link} points to ${specialKind(st)}`, { path: rel, target: link, resolved: real });
    }
  }

  async #copyFile(source: string, rel: string, expected: Stats): Promise<void> {
    this.#count(rel);
    if (this.bytes + expected.size > MAX_PACKAGE_BYTES) throw this.#tooManyBytes(rel);
    if (this.#dest === undefined) {
      this.bytes += expected.size;
      this.files += 1;
      return;
    }
    // O_NOFOLLOW and the inode check: the file must still be the one checked above, not a symlink put in its place.
    const input = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await input.stat();
      if (!st.isFile() || st.ino !== expected.ino || st.dev !== expected.dev) throw this.#refuse(`${rel} changed while it was copied`, { path: rel });
      const output = await open(join(this.#dest, rel), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, st.mode & 0o755);
      try {
        const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
        for (;;) {
          const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          // Charged as read, not by the size lstat saw: a file may grow while it is copied.
          this.#charge(rel, bytesRead);
          await output.write(buffer, 0, bytesRead);
        }
      } finally {
        await output.close();
      }
    } finally {
      await input.close();
    }
    this.files += 1;
  }

  #count(rel: string): void {
    this.#entries += 1;
    if (this.#entries > MAX_PACKAGE_FILES) {
      throw this.#refuse(`the package holds more than ${MAX_PACKAGE_FILES} files and folders (at ${rel})`, { path: rel, limit: MAX_PACKAGE_FILES });
    }
  }

  #charge(rel: string, bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > MAX_PACKAGE_BYTES) throw this.#tooManyBytes(rel);
  }

  #tooManyBytes(rel: string): Error {
    return this.#refuse(`the package holds more than ${MAX_PACKAGE_BYTES} bytes (at ${rel})`, { path: rel, limit: MAX_PACKAGE_BYTES });
  }

  #refuse(reason: string, details: Record<string, unknown>): Error {
    return hostError('HOST_ERR_PLUGIN_PACKAGE_UNSAFE', `plugin package ${this.#root} refused: ${reason}`, { details: { ...this.#subject, package: this.#root, ...details } });
  }
}
