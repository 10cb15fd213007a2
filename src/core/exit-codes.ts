/**
 * Exit codes shared by every command (docs/design.md, "What users rely on"):
 * 0 success, 1 runtime failure, 2 usage or configuration error.
 */
export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_CONFIG = 2;

/**
 * A problem the user must fix before the command can run (bad flag, wrong
 * password, wal_level, missing table, missing grant). The message says what is
 * wrong and how to fix it; the CLI prints it without a stack trace and exits 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
