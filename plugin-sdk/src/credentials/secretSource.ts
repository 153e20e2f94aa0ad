import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Type, { type Static } from 'typebox';
import { WorkerManagerError } from '../errors/WorkerManagerError.ts';

/**
 * Where a plugin reads a credential of its own (a token, a client secret): a file, or an environment variable granted
 * to the plugin in its manifest entry (`env:`). Never the value itself, so a config file holds no secret.
 * `fileDescription` says when the file is read (each plugin re-reads it at a different moment).
 */
export function secretSourceSchema(fileDescription = 'file holding it (absolute, or relative to the state directory)') {
  return Type.Union(
    [
      Type.Object({ file: Type.String({ minLength: 1, description: fileDescription }) }, { additionalProperties: false }),
      Type.Object({ env: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: "environment variable holding it (grant it in the plugin's env:)" }) }, { additionalProperties: false }),
    ],
    { description: 'a file or an environment variable; the value never appears in the config' },
  );
}

/** A credential's source: `{ file }` or `{ env }`. */
export type SecretSource = Static<ReturnType<typeof secretSourceSchema>>;

/** Where a source points, for errors and logs: the file or variable name, never the content. */
export function describeSecretSource(source: SecretSource, stateDir: string): Record<string, string> {
  return 'file' in source ? { file: path.resolve(stateDir, source.file) } : { env: source.env };
}

/**
 * Reads a credential from its file (relative paths from `stateDir`) or environment variable, at every call, so a file
 * an operator or a secret mount replaces is picked up. A trailing newline is dropped, so `echo x > file` and the same
 * value in a variable agree. Missing, empty or multi-line: `WM_ERR_CONFIGURATION` naming the source and `what` it is
 * for, never the content.
 */
export async function readSecretSource(source: SecretSource, what: string, stateDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  let raw: string;
  if ('env' in source) {
    const value = env[source.env];
    if (value === undefined || value.length === 0) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} is read from environment variable ${source.env}, which is not set in the plugin's threads (grant it with env: in the plugin entry)`, {
        details: { reason: 'no-credential', credential: what, env: source.env },
      });
    }
    raw = value;
  } else {
    const file = path.resolve(stateDir, source.file);
    try {
      raw = await readFile(file, 'utf8');
    } catch (cause) {
      throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} file ${file} cannot be read`, {
        details: { reason: 'no-credential', credential: what, file, errno: (cause as NodeJS.ErrnoException).code ?? null },
      });
    }
  }
  const value = raw.replace(/\r?\n$/, '');
  if (value.length === 0 || /[\r\n]/.test(value)) {
    throw new WorkerManagerError('WM_ERR_CONFIGURATION', `the ${what} in ${'env' in source ? `environment variable ${source.env}` : 'its file'} is empty or spans several lines`, {
      details: { reason: 'bad-credential', credential: what, ...describeSecretSource(source, stateDir) },
    });
  }
  return value;
}
