import { randomBytes } from 'node:crypto';

/**
 * A worker script (POSIX sh: dash on the host, busybox ash in the test image) that reads a secret file in a tight
 * loop and checks every read whole: the value is `<version>:<padding>:<version>` of a fixed length, so a torn read
 * (a mix of two versions, a truncated or empty file) shows as a mismatch of the two ends or of the length. It prints
 * `V <version>` when the version it reads changes, `PARTIAL <length>` for a torn read and `FAIL` when the file cannot
 * be read: never the value itself. Run it as `sh -c SCRIPT reader <path> <length>`; a relative path is taken under
 * `$WM_SECRETS_DIR`. On SIGHUP it prints `HUP <version>` with the version it reads at that moment.
 */
export const READER_SCRIPT = `case $1 in /*) f=$1;; *) f=$WM_SECRETS_DIR/$1;; esac
n=$2; last=
trap 'c=$(cat "$f"); echo "HUP \${c%%:*}"' HUP
while :; do
  if c=$(cat "$f" 2>/dev/null); then
    a=\${c%%:*}; b=\${c##*:}
    if [ "$a" != "$b" ] || [ \${#c} -ne "$n" ]; then echo "PARTIAL \${#c}"; fi
    if [ "$a" != "$last" ]; then echo "V $a"; last=$a; fi
  else
    echo FAIL
  fi
done`;

/** The command of a reader worker for the secret at `path` whose values are `length` characters long. */
export function readerCommand(path: string, length: number): string[] {
  return ['sh', '-c', READER_SCRIPT, 'reader', path, String(length)];
}

/** Makes versioned secret values of one fixed length; the padding is random so a scan for the value means something. */
export function versionedValues(padding = 4_096): { length: number; value(version: number): string; version(n: number): string } {
  const pad = randomBytes(padding / 2).toString('hex');
  const version = (n: number): string => String(n).padStart(4, '0');
  return { length: 4 + 1 + pad.length + 1 + 4, value: (n) => `${version(n)}:${pad}:${version(n)}`, version };
}

/** What a reader printed. */
export interface ReaderReport {
  fails: number;
  partials: number;
  /** Versions in the order the reader first saw them. */
  versions: number[];
  /** Versions read when a SIGHUP arrived. */
  hups: number[];
  /** True when the versions never went back. */
  monotonic: boolean;
  last: number | undefined;
}

/** Parses a reader's output. */
export function parseReader(text: string): ReaderReport {
  const report: ReaderReport = { fails: 0, partials: 0, versions: [], hups: [], monotonic: true, last: undefined };
  for (const line of text.split('\n')) {
    if (line === 'FAIL') report.fails++;
    else if (line.startsWith('PARTIAL')) report.partials++;
    else if (line.startsWith('V ')) {
      const v = Number(line.slice(2));
      if (report.last !== undefined && v < report.last) report.monotonic = false;
      report.versions.push(v);
      report.last = v;
    } else if (line.startsWith('HUP ')) report.hups.push(Number(line.slice(4)));
  }
  return report;
}
