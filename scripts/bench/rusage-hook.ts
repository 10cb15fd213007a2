/**
 * Loaded into the benchmark's cdc and sink processes with `--import`: at exit
 * prints the process's CPU time and peak RSS as one marked line on stderr
 * (processes.ts reads it). CPU seconds are the figure that holds on a busy
 * machine, where wall-clock rows/s does not.
 *
 * With BENCH_MEMORY_LOG=FILE it also samples process.memoryUsage() every
 * 200 ms and appends to FILE, at exit, one JSON line with the sample taken at
 * the highest RSS: what the peak is made of (V8 heap used/total, its young generation,
 * external and array buffers; the rest of RSS is native: code, the young generation's
 * unused half, malloc).
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import { RUSAGE_MARK } from './rusage-mark.js';

const MB = 1024 * 1024;
const memoryLog = process.env.BENCH_MEMORY_LOG;
let peak: (NodeJS.MemoryUsage & { newSpace: number }) | undefined;
if (memoryLog !== undefined) {
  setInterval(() => {
    const sample = process.memoryUsage();
    if (peak === undefined || sample.rss > peak.rss) {
      peak = { ...sample, newSpace: getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0 };
    }
  }, 200).unref();
}

process.on('exit', () => {
  const usage = process.resourceUsage();
  process.stderr.write(`\n${RUSAGE_MARK}${JSON.stringify({ userUs: usage.userCPUTime, systemUs: usage.systemCPUTime, maxRssKb: usage.maxRSS })}\n`);
  if (memoryLog !== undefined && peak !== undefined) {
    const mb = (bytes: number): number => Math.round(bytes / MB);
    appendFileSync(memoryLog, `${JSON.stringify({
      process: path.basename(process.argv[1] ?? '', '.js'),
      maxRssMb: mb(usage.maxRSS * 1024),
      atPeak: { rss: mb(peak.rss), heapTotal: mb(peak.heapTotal), heapUsed: mb(peak.heapUsed), newSpace: mb(peak.newSpace), external: mb(peak.external), arrayBuffers: mb(peak.arrayBuffers) },
      cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
    })}\n`);
  }
});
