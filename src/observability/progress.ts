/**
 * A one-line progress report (rows, rate, ETA) on stderr, only when stderr is
 * a terminal; logs and pipes get the structured log lines instead.
 */
export interface Progress {
  advance(rows: number): void;
  finish(): void;
}

export function createProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { advance: () => {}, finish: () => {} };
  const started = Date.now();
  let done = 0;
  let shownAt = 0;
  const show = (final: boolean): void => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = done / seconds;
    const eta = rate > 0 && total > done ? `, ETA ${Math.ceil((total - done) / rate)}s` : '';
    stream.write(`\r${label}: ${done.toLocaleString('en')}/${total.toLocaleString('en')} rows (${Math.round(rate).toLocaleString('en')} rows/s${eta})\x1b[K${final ? '\n' : ''}`);
  };
  return {
    advance: (rows) => {
      done += rows;
      if (Date.now() - shownAt >= 500) {
        shownAt = Date.now();
        show(false);
      }
    },
    finish: () => show(true),
  };
}
