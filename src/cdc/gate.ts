/**
 * Open/closed flag a producer of events awaits before reading more: closed by
 * backpressure, opened when delivery has caught up (or on shutdown).
 */
export class Gate {
  private waiting: (() => void)[] = [];
  private closed = false;

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.closed = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }

  /** Resolves at once when open, else when next opened. */
  wait(): Promise<void> {
    return this.closed ? new Promise((resolve) => this.waiting.push(resolve)) : Promise.resolve();
  }
}
