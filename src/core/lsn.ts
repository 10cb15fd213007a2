/**
 * PostgreSQL log sequence numbers as bigint.
 *
 * LSNs arrive as text in two spellings (`0/16B3748` from SQL, `00000000/016B3748`
 * from pg-logical-replication): never compare them as strings. As a number an
 * LSN is 64 bits wide, so it is kept as bigint end to end, never a JS float.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const match = LSN_TEXT.exec(text.trim());
  if (!match) throw new Error(`not an LSN: '${text}' (expected the form 16/B374D848)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** The canonical text form PostgreSQL itself prints: `16/B374D848`. */
export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > 0xffff_ffff_ffff_ffffn) throw new Error(`LSN out of range: ${lsn}`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}
