/**
 * Structured logs (pino, JSON lines) on stderr; stdout is left to the
 * commands' human-readable results. LOG_LEVEL sets the level (default info).
 * Anything that may hold a secret is redacted: fields by key name, and every
 * message and top-level string field (a client's error text may quote a
 * connection string) by redactUrl.
 */
import { pino, type Logger } from 'pino';
import { redactUrl } from '../config/connections.js';

export type { Logger };

export function createLogger(name: string): Logger {
  return pino(
    {
      name,
      level: process.env.LOG_LEVEL ?? 'info',
      redact: { paths: ['password', '*.password', 'databaseUrl', 'clickhouseUrl', '*.databaseUrl', '*.clickhouseUrl'], censor: '***' },
      base: { pid: process.pid },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'string' ? redactUrl(arg) : arg)) as Parameters<typeof method>);
        },
      },
      formatters: {
        log: (object) => Object.fromEntries(Object.entries(object).map(([key, value]) => [key, typeof value === 'string' ? redactUrl(value) : value])),
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 2, sync: true }),
  );
}
