/**
 * Structured logs (pino, JSON lines) on stderr; stdout is left to the
 * commands' human-readable results. LOG_LEVEL sets the level (default info).
 * Anything that may hold a secret is redacted by key name.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string): Logger {
  return pino(
    {
      name,
      level: process.env.LOG_LEVEL ?? 'info',
      redact: { paths: ['password', '*.password', 'databaseUrl', 'clickhouseUrl', '*.databaseUrl', '*.clickhouseUrl'], censor: '***' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 2, sync: true }),
  );
}
