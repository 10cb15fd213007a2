/**
 * Transaction visibility as a snapshot sees it, for the 32-bit xids the
 * stream gives (pgoutput's Begin message).
 *
 * Why it matters: PostgreSQL writes and flushes a commit record, which the
 * walsender then decodes and streams, before it takes the transaction out of
 * the running set. For a moment (longer when that backend is descheduled, or
 * waits for a synchronous standby) a transaction already streamed is
 * invisible to new snapshots. The marker (marker.ts) and the incremental
 * snapshot's window (chunk-window.ts) check for it.
 */

/** Whether a snapshot sees a transaction's changes (committed before it was taken). */
export type Visibility = (xid: number) => boolean;

/**
 * Reads a `pg_current_snapshot()` text, `xmin:xmax:xip,…` with 64-bit ids:
 * invisible are the transactions at or past xmax and those still running in
 * it. Only the low 32 bits are compared: every xid asked about is within
 * 2^31 of xmax (PostgreSQL keeps it so).
 */
export function visibilityIn(snapshot: string): Visibility {
  const [, xmaxText, xipText] = snapshot.split(':');
  if (xmaxText === undefined) throw new Error(`not a snapshot: '${snapshot}'`);
  const xmax = Number(BigInt(xmaxText) & 0xffffffffn);
  const running = new Set(xipText ? xipText.split(',').map((xid) => Number(BigInt(xid) & 0xffffffffn)) : []);
  return (xid) => {
    const behindXmax = (xmax - xid) >>> 0; // how far the xid lies before xmax, modulo 2^32
    return behindXmax !== 0 && behindXmax < 2 ** 31 && !running.has(xid);
  };
}

/** The xids of `xids` that `snapshot` does not see. */
export function invisibleIn(snapshot: string, xids: number[]): number[] {
  if (xids.length === 0) return xids;
  const visible = visibilityIn(snapshot);
  return xids.filter((xid) => !visible(xid));
}
