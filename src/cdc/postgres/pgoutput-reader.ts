/**
 * pgoutput protocol version 1 messages, read from the bytes of an XLogData
 * payload. Column values stay PostgreSQL's own text (never through pg-types'
 * global parsers, which turn timestamps into millisecond Dates in the process
 * time zone and int8 into strings or floats); decode.ts maps them losslessly.
 *
 * https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 */
import type { Lsn } from '../../core/lsn.js';

/** A column that pgoutput sent as "unchanged TOAST value" ('u'): its value is not in the message. */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast');

/** One tuple's values in column order: text, SQL NULL, or unchanged TOAST. */
export type TupleValue = string | null | typeof UNCHANGED_TOAST;
export type Tuple = TupleValue[];

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** atttypmod, -1 when none. */
  typmod: number;
}

export interface Relation {
  oid: number;
  schema: string;
  table: string;
  /** 'd' default, 'n' nothing, 'f' full, 'i' index. */
  replicaIdentity: string;
  columns: RelationColumn[];
}

/** Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
const PG_EPOCH_US = 946_684_800_000_000;

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: Lsn; commitTimeUs: number; xid: number }
  | { tag: 'commit'; commitLsn: Lsn; endLsn: Lsn; commitTimeUs: number }
  | { tag: 'origin'; name: string }
  | { tag: 'relation'; relation: Relation }
  | { tag: 'type'; oid: number; namespace: string; name: string }
  | { tag: 'insert'; relationOid: number; newTuple: Tuple }
  | { tag: 'update'; relationOid: number; oldTuple: Tuple | null; keyTuple: Tuple | null; newTuple: Tuple }
  | { tag: 'delete'; relationOid: number; oldTuple: Tuple | null; keyTuple: Tuple | null }
  | { tag: 'truncate'; relationOids: number[]; cascade: boolean; restartIdentity: boolean }
  | LogicalMessage
  | { tag: 'other'; byte: number };

/**
 * A `pg_logical_emit_message` (PostgreSQL 14+, sent only when START_REPLICATION
 * asks for `messages 'true'`). A transactional one arrives between its
 * transaction's Begin and Commit, in commit order like any change.
 */
export interface LogicalMessage {
  tag: 'message';
  transactional: boolean;
  lsn: Lsn;
  prefix: string;
  content: Buffer;
}

/** Tag bytes of the row-level messages: a skipped transaction's rows need no parsing. */
export function isRowMessage(buffer: Buffer): boolean {
  const tag = buffer[0];
  return tag === 0x49 || tag === 0x55 || tag === 0x44 || tag === 0x54;
}

export function readPgoutput(buffer: Buffer): PgoutputMessage {
  const reader = new Reader(buffer);
  const tag = reader.u8();
  switch (tag) {
    case 0x42: // B
      return { tag: 'begin', finalLsn: reader.lsn(), commitTimeUs: reader.timeUs(), xid: reader.u32() };
    case 0x43: // C
      reader.u8(); // flags, unused
      return { tag: 'commit', commitLsn: reader.lsn(), endLsn: reader.lsn(), commitTimeUs: reader.timeUs() };
    case 0x4f: // O
      reader.lsn();
      return { tag: 'origin', name: reader.cstring() };
    case 0x52: // R
      return { tag: 'relation', relation: readRelation(reader) };
    case 0x59: // Y
      return { tag: 'type', oid: reader.u32(), namespace: reader.cstring(), name: reader.cstring() };
    case 0x49: { // I
      const relationOid = reader.u32();
      reader.u8(); // 'N'
      return { tag: 'insert', relationOid, newTuple: reader.tuple() };
    }
    case 0x55: { // U
      const relationOid = reader.u32();
      let kind = reader.u8();
      let oldTuple: Tuple | null = null;
      let keyTuple: Tuple | null = null;
      if (kind === 0x4f) oldTuple = reader.tuple();
      else if (kind === 0x4b) keyTuple = reader.tuple();
      if (kind !== 0x4e) kind = reader.u8();
      if (kind !== 0x4e) throw new Error(`pgoutput update: expected 'N', got 0x${kind.toString(16)}`);
      return { tag: 'update', relationOid, oldTuple, keyTuple, newTuple: reader.tuple() };
    }
    case 0x44: { // D
      const relationOid = reader.u32();
      const kind = reader.u8();
      const tuple = reader.tuple();
      return kind === 0x4f
        ? { tag: 'delete', relationOid, oldTuple: tuple, keyTuple: null }
        : { tag: 'delete', relationOid, oldTuple: null, keyTuple: tuple };
    }
    case 0x54: { // T
      const count = reader.u32();
      const flags = reader.u8();
      const relationOids: number[] = [];
      for (let i = 0; i < count; i++) relationOids.push(reader.u32());
      return { tag: 'truncate', relationOids, cascade: (flags & 1) !== 0, restartIdentity: (flags & 2) !== 0 };
    }
    case 0x4d: { // M
      const transactional = (reader.u8() & 1) !== 0;
      const lsn = reader.lsn();
      const prefix = reader.cstring();
      return { tag: 'message', transactional, lsn, prefix, content: reader.bytes(reader.u32()) };
    }
    default:
      // The rest: nothing walbridge needs.
      return { tag: 'other', byte: tag };
  }
}

function readRelation(reader: Reader): Relation {
  const oid = reader.u32();
  const schema = reader.cstring();
  const table = reader.cstring();
  const replicaIdentity = String.fromCharCode(reader.u8());
  const count = reader.u16();
  const columns: RelationColumn[] = [];
  for (let i = 0; i < count; i++) {
    reader.u8(); // flags: part of the replica identity (all columns under FULL), so not the primary key
    const name = reader.cstring();
    const typeOid = reader.u32();
    const typmod = reader.u32() | 0; // signed: -1 when none
    columns.push({ name, typeOid, typmod });
  }
  return { oid, schema, table, replicaIdentity, columns };
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}

  u8(): number {
    return this.buffer.readUInt8(this.offset++);
  }

  u16(): number {
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  lsn(): Lsn {
    const value = this.buffer.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  /** A timestamp as microseconds since 1970 (exact as a number until the year 2255). */
  timeUs(): number {
    const micros = this.buffer.readBigInt64BE(this.offset);
    this.offset += 8;
    return Number(micros) + PG_EPOCH_US;
  }

  bytes(length: number): Buffer {
    const value = this.buffer.subarray(this.offset, this.offset + length);
    if (value.length !== length) throw new Error('pgoutput: truncated message');
    this.offset += length;
    return value;
  }

  cstring(): string {
    const end = this.buffer.indexOf(0, this.offset);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const text = this.buffer.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return text;
  }

  tuple(): Tuple {
    const count = this.u16();
    const values: Tuple = new Array<TupleValue>(count);
    for (let i = 0; i < count; i++) {
      const kind = this.u8();
      if (kind === 0x74 /* t */) {
        const length = this.u32();
        values[i] = this.buffer.toString('utf8', this.offset, this.offset + length);
        this.offset += length;
      } else if (kind === 0x6e /* n */) {
        values[i] = null;
      } else if (kind === 0x75 /* u */) {
        values[i] = UNCHANGED_TOAST;
      } else {
        throw new Error(`pgoutput: unexpected column kind 0x${kind.toString(16)} (binary mode is not requested)`);
      }
    }
    return values;
  }
}
