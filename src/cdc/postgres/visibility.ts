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

import { backoffDelay } from '../../core/retry.js';

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

/** Pauses between snapshot reads while some transaction is not visible: from 1 ms, doubling (jittered) up to this. */
const MAX_PAUSE_MS = 250;
/** While some stay invisible, `onWait` this often (not the usual moment: a backend stuck in its commit). */
const REPORT_EVERY_MS = 5_000;

/**
 * Resolves once a snapshot from `readSnapshot` (`pg_current_snapshot()` text
 * of a new statement) sees every transaction in `xids`; statements that
 * start after that see them too. Meanwhile `onWait` every 5 s.
 */
export async function awaitVisible(readSnapshot: () => Promise<string>, xids: Iterable<number>, onWait: (unseen: number[], waitedMs: number) => void): Promise<void> {
  let unseen = [...xids];
  const since = Date.now();
  let reported = since;
  for (let attempt = 0; ; attempt++) {
    unseen = invisibleIn(await readSnapshot(), unseen);
    if (unseen.length === 0) return;
    if (Date.now() - reported >= REPORT_EVERY_MS) {
      reported = Date.now();
      onWait(unseen, reported - since);
    }
    await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, 1, MAX_PAUSE_MS)));
  }
}

/** The xids of `xids` that `snapshot` does not see. */
export function invisibleIn(snapshot: string, xids: number[]): number[] {
  if (xids.length === 0) return xids;
  const visible = visibilityIn(snapshot);
  return xids.filter((xid) => !visible(xid));
}
