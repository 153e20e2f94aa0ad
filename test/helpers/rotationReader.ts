/**
 * A worker script that reads a secret file in a loop with shell built-ins only (no fork per read), stamping each read
 * with `$EPOCHREALTIME` (wall clock, microseconds). It needs a shell with `$EPOCHREALTIME` and `read -t <fraction> -u`:
 * bash on the host, busybox ash in the test image. Values are random (the store generates them), so the reader cannot
 * check a read whole by itself: whenever what it reads changes, it prints a fingerprint the test matches against the
 * values it knows, never the value:
 *
 *     V <first 8 chars> <last 8 chars> <length> <time before this read> <time before the last read of the old value> <reads>
 *     F <time> <reads>       the file could not be opened or was empty (printed once per failing stretch)
 *
 * A torn read (two versions mixed, truncated, empty) shows as a head and a tail of different versions, or a wrong length.
 * Arguments: `<path> <pause> [nice]`. A relative path is taken under `$WM_SECRETS_DIR`. `pause` is how long to wait
 * between reads in seconds (`0`: none); the wait is a `read -t` on a private FIFO, so it forks nothing either. With
 * `nice`, the reader also sets its session's scheduling group to nice 19 (see {@link rotationReaderCommand}).
 */
export const ROTATION_READER_SCRIPT = `case $1 in /*) f=$1;; *) f=$WM_SECRETS_DIR/$1;; esac
pause=$2
if [ "$3" = nice ]; then { echo 19 > /proc/self/autogroup; } 2>/dev/null || :; fi
if [ "$pause" != 0 ]; then
  p=\${TMPDIR:-/tmp}/wm-reader.$$
  mkfifo "$p" 2>/dev/null || busybox mkfifo "$p"
  exec 3<>"$p"
  rm -f "$p"
fi
last=; lt=-; i=0; bad=
while :; do
  t=$EPOCHREALTIME
  i=$((i+1)); c=
  if { IFS= read -r c || [ -n "$c" ]; } 2>/dev/null < "$f"; then
    bad=
    if [ "$c" != "$last" ]; then
      echo "V \${c%"\${c#????????}"} \${c#"\${c%????????}"} \${#c} $t $lt $i"
      last=$c
    fi
    lt=$t
  elif [ -z "$bad" ]; then
    echo "F $t $i"; bad=1; last=
  fi
  [ "$pause" = 0 ] || read -t "$pause" -u 3 x
done`;

/**
 * The command of a reader worker for the secret at `path`, for `shell` (`bash` on the host, `sh` in the busybox image).
 * `pauseMs` is the wait between reads. With `nice`, the loop runs at nice 19 (coreutils `nice`) and sets its
 * session's autogroup to nice 19: where the kernel groups tasks by session (sched_autogroup, on by default on many
 * distributions) a worker the process provider starts in its own session is weighed like any other session whatever
 * its own nice value.
 */
export function rotationReaderCommand(path: string, options: { shell: 'bash' | 'sh'; pauseMs: number; nice?: boolean }): string[] {
  const pause = options.pauseMs === 0 ? '0' : (options.pauseMs / 1_000).toFixed(3);
  const reader = [options.shell, '-c', ROTATION_READER_SCRIPT, 'reader', path, pause];
  return options.nice === true ? ['nice', '-n', '19', ...reader, 'nice'] : reader;
}

/** What identifies a value in a reader's output. */
export interface Fingerprint {
  head: string;
  tail: string;
  length: number;
}

/** The fingerprint a reader prints for `value`. */
export function fingerprintOf(value: string): Fingerprint {
  return { head: value.slice(0, 8), tail: value.slice(-8), length: value.length };
}

/** One change a reader saw. Times are epoch milliseconds (microsecond precision), taken just before the read. */
export interface ReaderChange extends Fingerprint {
  /** Start of the first read of this value. */
  firstAt: number;
  /** Start of the last read of the value before it (undefined for the first value, or after a failed read). */
  lastBeforeAt: number | undefined;
  /** Reads done so far, this one included. */
  reads: number;
}

/** A reader's output, parsed. */
export interface RotationReaderReport {
  changes: ReaderChange[];
  /** Stretches of failed reads (file missing or empty). */
  failures: number;
  /** Lines the parser did not understand (a broken reader). */
  garbage: string[];
}

const ms = (seconds: string): number => Number(seconds) * 1_000;

/** Parses a reader's output. */
export function parseRotationReader(text: string): RotationReaderReport {
  const report: RotationReaderReport = { changes: [], failures: 0, garbage: [] };
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const f = line.split(' ');
    if (f[0] === 'V' && f.length === 7) {
      report.changes.push({
        head: f[1] as string,
        tail: f[2] as string,
        length: Number(f[3]),
        firstAt: ms(f[4] as string),
        lastBeforeAt: f[5] === '-' ? undefined : ms(f[5] as string),
        reads: Number(f[6]),
      });
    } else if (f[0] === 'F' && f.length === 3) report.failures++;
    else report.garbage.push(line.slice(0, 200));
  }
  return report;
}
