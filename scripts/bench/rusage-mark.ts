/** Prefix of the line rusage-hook.ts prints at a process's exit. */
export const RUSAGE_MARK = 'BENCH_RUSAGE ';
