import pino, { type Logger } from 'pino';

/** Log levels the config accepts. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

/**
 * Field names whose values are replaced before a record is written. Secret values should never reach a logger at all;
 * this is the second line of defence for the places where a whole object gets logged.
 */
export const REDACTED_PATHS = [
  '*.value', '*.secret', '*.secrets', '*.token', '*.password', '*.authorization', 'secrets', 'value', 'token', 'password',
  // A plugin's own fields sit one level down, under `plugin` (see the sandbox's onLog).
  'plugin.*.value', 'plugin.*.secret', 'plugin.*.secrets', 'plugin.*.token', 'plugin.*.password', 'plugin.*.authorization',
];

/** The host logger: one JSON line per record on stderr, so stdout stays free for command output. */
export function createLogger(options: { level: LogLevel; hostId: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      // pid lets an operator (or a supervisor) tie a log line to the process it must signal.
      base: { hostId: options.hostId, pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

export type { Logger };
