/**
 * Loaded into the benchmark's cdc and sink processes with `--import`: at exit
 * prints the process's CPU time and peak RSS as one marked line on stderr
 * (processes.ts reads it). CPU seconds are the figure that holds on a busy
 * machine, where wall-clock rows/s does not.
 */
import { RUSAGE_MARK } from './rusage-mark.js';

process.on('exit', () => {
  const usage = process.resourceUsage();
  process.stderr.write(`\n${RUSAGE_MARK}${JSON.stringify({ userUs: usage.userCPUTime, systemUs: usage.systemCPUTime, maxRssKb: usage.maxRSS })}\n`);
});
