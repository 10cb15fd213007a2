/**
 * Row changes of the captured tables → Debezium envelopes (the format:
 * core/envelope.ts), written as JSON text directly so lossless values
 * (column-values.ts) are never re-parsed.
 *
 * Key: `{"<pk column>": value, …}` in primary-key order. Updates and deletes
 * carry `before` when PostgreSQL sent an old row (REPLICA IDENTITY FULL) or
 * the old key; an unchanged TOAST column in `after` takes its value from the
 * old row, and without one the decoder refuses (it never writes a wrong value).
 *
 * Columns left out or hashed for personal data (config/column-policy.ts) are
 * settled in `layout`, the one place a relation's columns become value
 * writers: row images (before, after, snapshot rows) and the schema header
 * are all written from it, so an excluded value is never written anywhere
 * and a hashed column is announced as text. Key columns are never either.
 *
 * Every change carries the schema header of the relation it was decoded with
 * (pgoutput's Relation message, or the snapshot query's columns), built once
 * per relation: its `missing` values come from the catalog, asynchronously, so
 * the header is `ready` a moment after the Relation message; the send batcher
 * waits for it before the first send that carries it.
 */
import { encodeTableSchema, envelopeText, sourceHeadText, sourceTailText, tableFieldsText, timesText, topicName, type Operation } from '../../core/envelope.js';
import type { Lsn } from '../../core/lsn.js';
import { ColumnPolicy } from '../../config/column-policy.js';
import { TEXT_OID, valueWriter, type ValueWriter } from './column-values.js';
import { UNCHANGED_TOAST, type Relation, type RelationColumn, type Tuple } from './pgoutput-reader.js';
import type { CapturedTable } from './table.js';

/** A relation's `walbridge.schema` header; `value` is set once `ready` resolved. */
export interface SchemaHeader {
  value: Buffer | null;
  ready: Promise<void>;
}

/** One Kafka message ready to send. */
export interface DecodedChange {
  op: Operation;
  table: CapturedTable;
  topic: string;
  /** null for a truncate (it is sent to every partition). */
  key: string | null;
  /** null for a tombstone (`--tombstones`, after a delete). */
  value: string | null;
  /** The primary key texts of a row to flag `sent_to_kafka`, or null. */
  markKey: string[] | null;
  /** The id of the streamed transaction of the change (null for snapshot rows): the marker waits until it is visible (marker.ts). */
  xid: number | null;
  schema: SchemaHeader | null;
  /** Debezium's headers on the delete/create pair of a primary-key change, else null. */
  headers: [string, string][] | null;
}

/** What a streamed transaction contributes to each of its events' `source`. */
export interface TransactionContext {
  xid: number;
  finalLsn: Lsn;
  commitTimeUs: number;
  /** The commit LSN of the transaction before this one in the stream (Debezium's lastCommitLsn), null for the first one read. */
  lastCommitLsn: Lsn | null;
  /** Position of the next event in the transaction, from 1. */
  order: number;
}

/** Where a snapshot row stands, for `source.snapshot` (Debezium's markers). */
export type SnapshotMarker = 'first' | 'first_in_data_collection' | 'true' | 'last_in_data_collection' | 'last' | 'incremental';

/** What every row of one snapshot read shares. */
export interface SnapshotContext {
  /** The row version: the slot's consistent point, or the commit LSN of an incremental chunk's high watermark. */
  version: Lsn;
  /** The reading transaction's id (Debezium sends it), or null. */
  txId: number | null;
  tsMs: number;
}

export interface DecoderOptions {
  topicPrefix: string;
  database: string;
  markSent: boolean;
  /** Send a null-value message after each delete (for compacted topics). */
  tombstones: boolean;
  /** Column → attmissingval text of a table (table.ts `missingValues`). */
  missingValues(table: CapturedTable): Promise<Map<string, string>>;
  /** Columns to leave out or hash (default: none). */
  columns?: ColumnPolicy;
}

const IDENTITY_NAMES: Record<string, string> = { d: 'DEFAULT', n: 'NOTHING', f: 'FULL', i: 'USING INDEX' };
export const OLD_KEY_HEADER = '__debezium.oldkey';
export const NEW_KEY_HEADER = '__debezium.newkey';

/** The columns of one relation (or one snapshot query) of a captured table. */
export interface ColumnLayout {
  table: CapturedTable;
  /** REPLICA IDENTITY as the Relation message gave it ('f' for snapshot rows). */
  replicaIdentity: string;
  names: string[];
  /** The columns written into row images, in table order: all but the excluded ones. */
  emitted: number[];
  /** `"name":` of each emitted column (with the separating comma after the first), by column index. */
  prefixes: string[];
  /** `"name":` of each primary key column, in key order. */
  keyPrefixes: string[];
  writers: ValueWriter[];
  keyIndexes: number[];
  sentFlagIndex: number;
  schema: SchemaHeader;
}

interface TableState {
  table: CapturedTable;
  topic: string;
  /** `"schema":…,"table":…` of `source`. */
  fields: string;
  wantsMarks: boolean;
  /** Snapshot layouts by their columns' signature. */
  snapshotLayouts: Map<string, ColumnLayout>;
}

interface TransactionPieces {
  txn: TransactionContext;
  head: string;
  sequenceHead: string;
  transactionHead: string;
}

export class ChangeDecoder {
  private readonly tables = new Map<string, TableState>();
  private readonly layouts = new Map<number, ColumnLayout>();
  /**
   * Every Relation message read, captured or not: pgoutput sends one per
   * relation per stream, so a table captured later (an incremental snapshot
   * of a table added while running) takes its layout from here.
   */
  private readonly relations = new Map<number, Relation>();
  private readonly typeNames = new Map<number, string>();
  private readonly sourceHead: string;
  private readonly sourceDb: string;
  private txnPieces: TransactionPieces | null = null;

  constructor(tables: readonly CapturedTable[], private readonly options: DecoderOptions) {
    this.sourceHead = sourceHeadText(options.topicPrefix);
    this.sourceDb = `,"db":${JSON.stringify(options.database)}`;
    for (const table of tables) this.capture(table);
  }

  /** Adds a table to the captured set (a table added while running); its changes are decoded from the next one on. */
  capture(table: CapturedTable): void {
    this.tables.set(table.qualified, {
      table,
      topic: topicName(this.options.topicPrefix, table.schema, table.table),
      fields: tableFieldsText(table.schema, table.table),
      wantsMarks: this.options.markSent && table.sentFlag !== null,
      snapshotLayouts: new Map(),
    });
    for (const relation of this.relations.values()) {
      if (relation.schema === table.schema && relation.table === table.table) this.relation(relation);
    }
  }

  get captured(): CapturedTable[] {
    return [...this.tables.values()].map((state) => state.table);
  }

  topicOf(table: CapturedTable): string {
    return this.state(table).topic;
  }

  /** pgoutput's Type message: the name of a type outside the built-in ones (enums, domains), for the schema header. */
  type(oid: number, namespace: string, name: string): void {
    this.typeNames.set(oid, namespace === 'pg_catalog' ? name : `${namespace}.${name}`);
  }

  /** Registers a relation's columns when it is a captured table (`captures` tells afterwards); forgets it otherwise. */
  relation(relation: Relation): void {
    this.relations.set(relation.oid, relation);
    const state = this.tables.get(`${relation.schema}.${relation.table}`);
    if (!state) {
      this.layouts.delete(relation.oid);
      return;
    }
    this.layouts.set(relation.oid, this.layout(state, relation.columns, relation.replicaIdentity));
  }

  captures(relationOid: number): boolean {
    return this.layouts.has(relationOid);
  }

  /** The captured table of a relation, or undefined. */
  tableOf(relationOid: number): CapturedTable | undefined {
    return this.layouts.get(relationOid)?.table;
  }

  insert(relationOid: number, row: Tuple, lsn: Lsn, txn: TransactionContext): DecodedChange {
    const layout = this.layoutOf(relationOid);
    return this.change(layout, 'c', 'null', this.image(layout, row, null), this.key(layout, row), row, lsn, txn, null);
  }

  /**
   * One 'u' event; or, when the primary key changed, a 'd' for the old key
   * (before = the old row) and a 'c' for the new one, as Debezium does (with
   * its `__debezium.newkey` / `__debezium.oldkey` headers), so the old key's
   * row does not stay behind downstream. All carry the transaction's commit
   * LSN as their version.
   */
  update(relationOid: number, oldRow: Tuple | null, oldKey: Tuple | null, row: Tuple, lsn: Lsn, txn: TransactionContext): DecodedChange[] {
    const layout = this.layoutOf(relationOid);
    const before = oldRow ? this.image(layout, oldRow, null) : oldKey ? this.keyImage(layout, oldKey) : null;
    const after = this.image(layout, row, oldRow);
    const key = this.key(layout, row);
    const previous = oldRow ?? oldKey;
    if (previous && before !== null) {
      const oldKeyText = this.key(layout, previous);
      if (oldKeyText !== key) {
        return [
          ...this.deletion(layout, oldKeyText, before, lsn, txn, [[NEW_KEY_HEADER, key]]),
          this.change(layout, 'c', 'null', after, key, row, lsn, txn, [[OLD_KEY_HEADER, oldKeyText]]),
        ];
      }
    }
    return [this.change(layout, 'u', before ?? 'null', after, key, row, lsn, txn, null)];
  }

  delete(relationOid: number, oldRow: Tuple | null, oldKey: Tuple | null, lsn: Lsn, txn: TransactionContext): DecodedChange[] {
    const layout = this.layoutOf(relationOid);
    const row = oldRow ?? oldKey;
    if (!row) throw new Error('pgoutput delete without an old row or key');
    const before = oldRow ? this.image(layout, oldRow, null) : this.keyImage(layout, row);
    return this.deletion(layout, this.key(layout, row), before, lsn, txn, null);
  }

  /** The truncate event of one captured table (the caller sends it to every partition of its topic). */
  truncate(relationOid: number, lsn: Lsn, txn: TransactionContext): DecodedChange {
    const layout = this.layoutOf(relationOid);
    const value = this.envelope('null', 'null', 't', this.streamSource(layout, lsn, txn), txn);
    return { op: 't', table: layout.table, topic: this.state(layout.table).topic, key: null, value, markKey: null, xid: txn.xid, schema: layout.schema, headers: null };
  }

  /** The layout of a snapshot query's columns (once per fetched batch; cached by the columns' signature). */
  snapshotLayout(table: CapturedTable, columns: RelationColumn[]): ColumnLayout {
    const state = this.state(table);
    const signature = columns.map((c) => `${c.name}:${c.typeOid}:${c.typmod}`).join(',');
    let layout = state.snapshotLayouts.get(signature);
    if (!layout) {
      layout = this.layout(state, columns, 'f');
      state.snapshotLayouts.set(signature, layout);
    }
    return layout;
  }

  /** A snapshot row (op 'r'), from a query's text values. */
  snapshotRow(layout: ColumnLayout, row: (string | null)[], context: SnapshotContext, marker: SnapshotMarker): DecodedChange {
    const state = this.state(layout.table);
    const source = `${this.sourceHead},${timesText(context.tsMs * 1000)},"snapshot":"${marker}"${this.sourceDb}` +
      `,"sequence":"[null,\\"${context.version}\\"]"${sourceTailText(state.fields, context.txId, context.version, context.version)}`;
    const value = envelopeText('null', this.image(layout, row, null), source, 'r', 'null');
    return { op: 'r', table: layout.table, topic: state.topic, key: this.key(layout, row), value, markKey: this.markKey(layout, row), xid: null, schema: layout.schema, headers: null };
  }

  private deletion(layout: ColumnLayout, key: string, before: string, lsn: Lsn, txn: TransactionContext, headers: [string, string][] | null): DecodedChange[] {
    const topic = this.state(layout.table).topic;
    const value = this.envelope(before, 'null', 'd', this.streamSource(layout, lsn, txn), txn);
    const deletion: DecodedChange = { op: 'd', table: layout.table, topic, key, value, markKey: null, xid: txn.xid, schema: layout.schema, headers };
    if (!this.options.tombstones) return [deletion];
    return [deletion, { op: 'd', table: layout.table, topic, key, value: null, markKey: null, xid: txn.xid, schema: layout.schema, headers: null }];
  }

  private change(layout: ColumnLayout, op: Operation, before: string, after: string, key: string, row: Tuple, lsn: Lsn, txn: TransactionContext, headers: [string, string][] | null): DecodedChange {
    const value = this.envelope(before, after, op, this.streamSource(layout, lsn, txn), txn);
    return { op, table: layout.table, topic: this.state(layout.table).topic, key, value, markKey: this.markKey(layout, row), xid: txn.xid, schema: layout.schema, headers };
  }

  private envelope(before: string, after: string, op: Operation, source: string, txn: TransactionContext): string {
    const order = txn.order++;
    const transaction = `${this.pieces(txn).transactionHead}${order},"data_collection_order":${order}}`;
    return envelopeText(before, after, source, op, transaction);
  }

  private streamSource(layout: ColumnLayout, lsn: Lsn, txn: TransactionContext): string {
    const { head, sequenceHead } = this.pieces(txn);
    return `${head}${sequenceHead}${lsn}\\"]"${sourceTailText(this.state(layout.table).fields, txn.xid, lsn, txn.finalLsn)}`;
  }

  /** The parts of `source` and `transaction` every event of a transaction shares, built once per transaction. */
  private pieces(txn: TransactionContext): TransactionPieces {
    if (this.txnPieces?.txn === txn) return this.txnPieces;
    const lastCommit = txn.lastCommitLsn === null ? 'null' : `\\"${txn.lastCommitLsn}\\"`;
    this.txnPieces = {
      txn,
      head: `${this.sourceHead},${timesText(txn.commitTimeUs)},"snapshot":"false"${this.sourceDb}`,
      sequenceHead: `,"sequence":"[${lastCommit},\\"`,
      transactionHead: `{"id":"${txn.xid}:${txn.finalLsn}","total_order":`,
    };
    return this.txnPieces;
  }

  private state(table: CapturedTable): TableState {
    const state = this.tables.get(table.qualified);
    if (!state) throw new Error(`table ${table.qualified} is not captured`);
    return state;
  }

  private layout(state: TableState, columns: RelationColumn[], replicaIdentity: string): ColumnLayout {
    const { table } = state;
    const names = columns.map((c) => c.name);
    const keyIndexes = table.primaryKey.map((pk) => {
      const index = names.indexOf(pk);
      if (index < 0) throw new Error(`primary key column '${pk}' is not in the replicated columns of ${table.qualified}`);
      return index;
    });
    const treatments = names.map((name) => this.columnPolicy.treatment(table.qualified, name));
    const writers = columns.map((c, i) => (treatments[i] === 'hash' ? this.hashWriter : valueWriter(c.typeOid)));
    const emitted = names.flatMap((_, i) => (treatments[i] === 'exclude' ? [] : [i]));
    const prefixes = names.map((name, i) => `${i === emitted[0] ? '' : ','}${JSON.stringify(name)}:`);
    // The header announces what the events carry: no excluded column, a hashed one as text.
    const announced = emitted.map((i) => (treatments[i] === 'hash' ? { ...columns[i]!, typeOid: TEXT_OID, typmod: -1 } : columns[i]!));
    return {
      table,
      replicaIdentity,
      names,
      emitted,
      prefixes,
      keyPrefixes: keyIndexes.map((i) => `${JSON.stringify(names[i])}:`),
      writers,
      keyIndexes,
      sentFlagIndex: state.wantsMarks && table.sentFlag !== null ? names.indexOf(table.sentFlag) : -1,
      schema: this.schemaHeader(table, announced, emitted.map((i) => writers[i]!)),
    };
  }

  /** `"<hex>"`: a hashed column's value (config/column-policy.ts). */
  private readonly hashWriter: ValueWriter = (text) => `"${this.columnPolicy.hashText(text)}"`;

  private get columnPolicy(): ColumnPolicy {
    return this.options.columns ?? ColumnPolicy.none;
  }

  private schemaHeader(table: CapturedTable, columns: RelationColumn[], writers: ValueWriter[]): SchemaHeader {
    const header: SchemaHeader = { value: null, ready: Promise.resolve() };
    header.ready = this.options.missingValues(table).then(
      (missing) => {
        const text = encodeTableSchema(table.schema, table.table, columns.map((column, i) => {
          const stored = missing.get(column.name);
          const typeName = this.typeNames.get(column.typeOid);
          return {
            name: column.name,
            typeOid: column.typeOid,
            typmod: column.typmod,
            ...(typeName === undefined ? {} : { typeName }),
            key: table.primaryKey.includes(column.name),
            ...(stored === undefined ? {} : { missingJson: writers[i]!(stored) }),
          };
        }));
        header.value = Buffer.from(text, 'utf8');
      },
      (error: Error) => {
        throw new Error(`reading the column defaults of ${table.qualified} for its schema header: ${error.message}`);
      },
    );
    header.ready.catch(() => {}); // awaited by the batcher; a failure surfaces there
    return header;
  }

  private layoutOf(relationOid: number): ColumnLayout {
    const layout = this.layouts.get(relationOid);
    if (!layout) throw new Error(`pgoutput change for relation ${relationOid} before its Relation message`);
    return layout;
  }

  private image(layout: ColumnLayout, row: Tuple, fallback: Tuple | null): string {
    let json = '{';
    for (const i of layout.emitted) {
      const raw = row[i];
      const value = raw === UNCHANGED_TOAST ? fallback?.[i] : raw;
      if (value === UNCHANGED_TOAST || value === undefined) throw this.unchangedToast(layout, i);
      json += layout.prefixes[i]! + (value === null ? 'null' : layout.writers[i]!(value));
    }
    return `${json}}`;
  }

  private unchangedToast(layout: ColumnLayout, column: number): Error {
    const name = layout.table.qualified;
    const fix = `ALTER TABLE ${name} REPLICA IDENTITY FULL`;
    if (layout.replicaIdentity !== 'f') {
      const identity = IDENTITY_NAMES[layout.replicaIdentity] ?? layout.replicaIdentity;
      return new Error(
        `column '${layout.names[column]}' of ${name} arrived as an unchanged TOAST value, and the table had REPLICA IDENTITY ${identity} when the change was written, ` +
          `so PostgreSQL logged no old row and the value is not in the WAL. ` +
          `Run ${fix} for later changes (or start cdc with --replica-identity full); this transaction cannot be decoded: to skip it, start with --from-lsn just past its commit LSN ` +
          `and re-snapshot the table (cdc snapshot --table ${name})`,
      );
    }
    return new Error(`column '${layout.names[column]}' of ${name} arrived as an unchanged TOAST value without an old row to take it from; set ${fix}`);
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
      if (typeof value !== 'string') throw new Error(`primary key column '${layout.names[i]}' of ${layout.table.qualified} has no value`);
      json += `${k === 0 ? '' : ','}${layout.keyPrefixes[k]!}${layout.writers[i]!(value)}`;
    }
    return `${json}}`;
  }

  /** The row's primary key texts when its `sent_to_kafka` is false, so the marker flags it. */
  private markKey(layout: ColumnLayout, row: Tuple): string[] | null {
    if (layout.sentFlagIndex < 0 || row[layout.sentFlagIndex] !== 'f') return null;
    return layout.keyIndexes.map((i) => row[i] as string);
  }
}
