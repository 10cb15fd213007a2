/**
 * Row changes → Debezium envelopes (core/envelope.ts), written as JSON
 * text directly so lossless values (column-values.ts) are never re-parsed.
 *
 * Key: `{"<pk column>": value, …}` in primary-key order. Updates and deletes
 * carry `before` when PostgreSQL sent an old row (REPLICA IDENTITY FULL) or
 * the old key; an unchanged TOAST column in `after` takes its value from the
 * old row, and without one the decoder refuses (it never writes a wrong value).
 */
import { formatLsn, type Lsn } from '../../core/lsn.js';
import type { Operation } from '../../core/envelope.js';
import { valueWriter, type ValueWriter } from './column-values.js';
import { UNCHANGED_TOAST, type Relation, type Tuple } from './pgoutput-reader.js';
import type { CapturedTable } from './table.js';

export const CONNECTOR_VERSION = 'walbridge-0.1.0';

/** One change ready for Kafka. `markId` is the primary key text of a row to flag `sent_to_kafka`. */
export interface DecodedChange {
  op: Operation;
  /** null for a truncate (it is sent to every partition). */
  key: string | null;
  value: string;
  markId: string | null;
}

/** What a streamed transaction contributes to each of its events' `source`. */
export interface TransactionContext {
  xid: number;
  finalLsn: Lsn;
  commitTimeMs: number;
  /** Position of the next event in the transaction, from 1. */
  order: number;
}

const IDENTITY_NAMES: Record<string, string> = { d: 'DEFAULT', n: 'NOTHING', f: 'FULL', i: 'USING INDEX' };

interface TransactionPieces {
  txn: TransactionContext;
  sourceHead: string;
  sourceMiddle: string;
  sourceTail: string;
  transactionHead: string;
}

interface ColumnLayout {
  /** REPLICA IDENTITY as the Relation message gave it ('f' for snapshot rows). */
  replicaIdentity: string;
  names: string[];
  prefixes: string[];
  /** `"name":` of each primary key column, in key order. */
  keyPrefixes: string[];
  writers: ValueWriter[];
  keyIndexes: number[];
  sentFlagIndex: number;
}

export class ChangeDecoder {
  private readonly layouts = new Map<number, ColumnLayout>();
  private readonly sourceHead: string;
  private readonly sourceTail: string;
  private readonly tableFields: string;
  private readonly wantsMarks: boolean;
  private txnPieces: TransactionPieces | null = null;
  private snapshotSources: { consistentPoint: Lsn; tsMs: number; last: string; other: string } | null = null;

  constructor(
    private readonly table: CapturedTable,
    topicPrefix: string,
    database: string,
    markSent: boolean,
  ) {
    this.sourceHead = `{"version":"${CONNECTOR_VERSION}","connector":"postgresql","name":${JSON.stringify(topicPrefix)}`;
    this.sourceTail = `,"db":${JSON.stringify(database)},`;
    this.tableFields = `"schema":${JSON.stringify(table.schema)},"table":${JSON.stringify(table.table)}`;
    this.wantsMarks = markSent && table.sentFlag !== null && table.primaryKey.length === 1;
  }

  /** Registers a relation's columns when it is the captured table (`captures` tells afterwards). */
  relation(relation: Relation): void {
    if (relation.schema !== this.table.schema || relation.table !== this.table.table) return;
    this.layouts.set(relation.oid, this.layout(relation.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })), relation.replicaIdentity));
  }

  captures(relationOid: number): boolean {
    return this.layouts.has(relationOid);
  }

  insert(relationOid: number, row: Tuple, lsn: Lsn, txn: TransactionContext): DecodedChange {
    const layout = this.layoutOf(relationOid);
    return this.change(layout, 'c', null, this.image(layout, row, null), row, lsn, txn);
  }

  /**
   * One 'u' event; or, when the primary key changed, a 'd' for the old key
   * (before = the old row) and a 'c' for the new one, as Debezium does, so the
   * old key's row does not stay behind downstream. Both carry the
   * transaction's commit LSN as their version.
   */
  update(relationOid: number, oldRow: Tuple | null, oldKey: Tuple | null, row: Tuple, lsn: Lsn, txn: TransactionContext): DecodedChange[] {
    const layout = this.layoutOf(relationOid);
    const before = oldRow ? this.image(layout, oldRow, null) : oldKey ? this.keyImage(layout, oldKey) : null;
    const after = this.image(layout, row, oldRow);
    const previous = oldRow ?? oldKey;
    if (previous && before !== null) {
      const oldKeyText = this.key(layout, previous);
      if (oldKeyText !== this.key(layout, row)) {
        const source = this.streamSource(lsn, txn);
        return [
          { op: 'd', key: oldKeyText, value: this.envelope(before, 'null', 'd', source, txn), markId: null },
          this.change(layout, 'c', null, after, row, lsn, txn),
        ];
      }
    }
    return [this.change(layout, 'u', before, after, row, lsn, txn)];
  }

  delete(relationOid: number, oldRow: Tuple | null, oldKey: Tuple | null, lsn: Lsn, txn: TransactionContext): DecodedChange {
    const layout = this.layoutOf(relationOid);
    const row = oldRow ?? oldKey;
    if (!row) throw new Error('pgoutput delete without an old row or key');
    const before = oldRow ? this.image(layout, oldRow, null) : this.keyImage(layout, row);
    return { op: 'd', key: this.key(layout, row), value: this.envelope(before, 'null', 'd', this.streamSource(lsn, txn), txn), markId: null };
  }

  truncate(lsn: Lsn, txn: TransactionContext): DecodedChange {
    return { op: 't', key: null, value: this.envelope('null', 'null', 't', this.streamSource(lsn, txn), txn), markId: null };
  }

  /**
   * A snapshot row (op 'r'), from a query's text values and column type OIDs.
   * Its version is the slot's consistent point.
   */
  snapshotRow(columns: { name: string; typeOid: number }[], row: (string | null)[], consistentPoint: Lsn, last: boolean, tsMs: number): DecodedChange {
    let layout = this.layouts.get(-1);
    if (!layout) {
      layout = this.layout(columns, 'f');
      this.layouts.set(-1, layout);
    }
    const source = this.snapshotSource(consistentPoint, tsMs, last);
    const value = `{"before":null,"after":${this.image(layout, row, null)},"source":${source},"op":"r","ts_ms":${Date.now()},"transaction":null}`;
    return { op: 'r', key: this.key(layout, row), value, markId: this.markId(layout, row) };
  }

  /** `source` of a snapshot row: the same text for every row but the last, built once. */
  private snapshotSource(consistentPoint: Lsn, tsMs: number, last: boolean): string {
    const cached = this.snapshotSources;
    if (cached?.consistentPoint === consistentPoint && cached.tsMs === tsMs) return last ? cached.last : cached.other;
    const text = (marker: string): string =>
      `${this.sourceHead},"ts_ms":${tsMs},"snapshot":"${marker}"${this.sourceTail}"sequence":null,${this.tableFields}` +
      `,"txId":null,"lsn":${consistentPoint},"xmin":null,"commit_lsn":"${formatLsn(consistentPoint)}"}`;
    this.snapshotSources = { consistentPoint, tsMs, last: text('last'), other: text('true') };
    return last ? this.snapshotSources.last : this.snapshotSources.other;
  }

  private change(layout: ColumnLayout, op: Operation, before: string | null, after: string, row: Tuple, lsn: Lsn, txn: TransactionContext): DecodedChange {
    const value = this.envelope(before ?? 'null', after, op, this.streamSource(lsn, txn), txn);
    return { op, key: this.key(layout, row), value, markId: this.markId(layout, row) };
  }

  private envelope(before: string, after: string, op: Operation, source: string, txn: TransactionContext): string {
    const order = txn.order++;
    const transaction = `${this.pieces(txn).transactionHead}${order},"data_collection_order":${order}}`;
    return `{"before":${before},"after":${after},"source":${source},"op":"${op}","ts_ms":${Date.now()},"transaction":${transaction}}`;
  }

  private streamSource(lsn: Lsn, txn: TransactionContext): string {
    const { sourceHead, sourceMiddle, sourceTail } = this.pieces(txn);
    const lsnText = String(lsn);
    return `${sourceHead}${lsnText}${sourceMiddle}${lsnText}${sourceTail}`;
  }

  /** The parts of `source` and `transaction` every event of a transaction shares, built once per transaction. */
  private pieces(txn: TransactionContext): TransactionPieces {
    if (this.txnPieces?.txn === txn) return this.txnPieces;
    this.txnPieces = {
      txn,
      sourceHead: `${this.sourceHead},"ts_ms":${txn.commitTimeMs},"snapshot":"false"${this.sourceTail}"sequence":"[null,\\"`,
      sourceMiddle: `\\"]",${this.tableFields},"txId":${txn.xid},"lsn":`,
      sourceTail: `,"xmin":null,"commit_lsn":"${formatLsn(txn.finalLsn)}"}`,
      transactionHead: `{"id":"${txn.xid}:${txn.finalLsn}","total_order":`,
    };
    return this.txnPieces;
  }

  private layout(columns: { name: string; typeOid: number }[], replicaIdentity: string): ColumnLayout {
    const names = columns.map((c) => c.name);
    const keyIndexes = this.table.primaryKey.map((pk) => {
      const index = names.indexOf(pk);
      if (index < 0) throw new Error(`primary key column '${pk}' is not in the replicated columns of ${this.table.schema}.${this.table.table}`);
      return index;
    });
    return {
      replicaIdentity,
      names,
      prefixes: names.map((name, i) => `${i === 0 ? '' : ','}${JSON.stringify(name)}:`),
      keyPrefixes: keyIndexes.map((i) => `${JSON.stringify(names[i])}:`),
      writers: columns.map((c) => valueWriter(c.typeOid)),
      keyIndexes,
      sentFlagIndex: this.table.sentFlag === null ? -1 : names.indexOf(this.table.sentFlag),
    };
  }

  private layoutOf(relationOid: number): ColumnLayout {
    const layout = this.layouts.get(relationOid);
    if (!layout) throw new Error(`pgoutput change for relation ${relationOid} before its Relation message`);
    return layout;
  }

  private image(layout: ColumnLayout, row: Tuple, fallback: Tuple | null): string {
    let json = '{';
    for (let i = 0; i < row.length; i++) {
      const raw = row[i];
      const value = raw === UNCHANGED_TOAST ? fallback?.[i] : raw;
      if (value === UNCHANGED_TOAST || value === undefined) throw this.unchangedToast(layout, i);
      json += layout.prefixes[i]! + (value === null ? 'null' : layout.writers[i]!(value));
    }
    return `${json}}`;
  }

  private unchangedToast(layout: ColumnLayout, column: number): Error {
    const name = `${this.table.schema}.${this.table.table}`;
    const fix = `ALTER TABLE ${name} REPLICA IDENTITY FULL`;
    if (layout.replicaIdentity !== 'f') {
      const identity = IDENTITY_NAMES[layout.replicaIdentity] ?? layout.replicaIdentity;
      return new Error(
        `column '${layout.names[column]}' arrived as an unchanged TOAST value, and ${name} had REPLICA IDENTITY ${identity} when the change was written ` +
          `(it was changed after cdc set FULL), so PostgreSQL logged no old row and the value is not in the WAL. ` +
          `Run ${fix} for later changes; this transaction cannot be decoded: to skip it, start with --from-lsn just past its commit LSN ` +
          `and send the row again (UPDATE ${name} SET sent_to_kafka = false WHERE …)`,
      );
    }
    return new Error(`column '${layout.names[column]}' arrived as an unchanged TOAST value without an old row to take it from; set ${fix} (cdc start does this when it may)`);
  }

  private keyImage(layout: ColumnLayout, row: Tuple): string {
    const keyOnly: Tuple = row.map((value, i) => (layout.keyIndexes.includes(i) ? value : null));
    return this.image(layout, keyOnly, null);
  }

  private key(layout: ColumnLayout, row: Tuple): string {
    let json = '{';
    for (let k = 0; k < layout.keyIndexes.length; k++) {
      const i = layout.keyIndexes[k]!;
      const value = row[i];
      if (typeof value !== 'string') throw new Error(`primary key column '${layout.names[i]}' has no value`);
      json += `${k === 0 ? '' : ','}${layout.keyPrefixes[k]!}${layout.writers[i]!(value)}`;
    }
    return `${json}}`;
  }

  /** The row's key text when its `sent_to_kafka` is false, so the marker flags it. */
  private markId(layout: ColumnLayout, row: Tuple): string | null {
    if (!this.wantsMarks || layout.sentFlagIndex < 0 || row[layout.sentFlagIndex] !== 'f') return null;
    const id = row[layout.keyIndexes[0]!];
    return typeof id === 'string' ? id : null;
  }
}
