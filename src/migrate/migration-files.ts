/**
 * Migration files: migrations/<target>/NNN_name.sql, applied in name order,
 * each recorded by name so a second run applies nothing.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface MigrationFile {
  name: string;
  sql: string;
}

/** The repository's migrations/ folder, found from this file (src/ or dist/src/). */
export function migrationsRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (path.basename(dir) !== 'src') dir = path.dirname(dir);
  const parent = path.dirname(dir);
  return path.join(path.basename(parent) === 'dist' ? path.dirname(parent) : parent, 'migrations');
}

export async function readMigrations(target: 'postgres' | 'clickhouse'): Promise<MigrationFile[]> {
  const dir = path.join(migrationsRoot(), target);
  const names = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort();
  return Promise.all(names.map(async (name) => ({ name, sql: await readFile(path.join(dir, name), 'utf8') })));
}

/** Splits a file into statements at semicolons that end a line; drops comments-only pieces. */
export function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*$/m)
    .map((piece) => piece.split('\n').filter((line) => !line.trim().startsWith('--')).join('\n').trim())
    .filter((piece) => piece.length > 0);
}

export function fillMarkers(sql: string, markers: Record<string, string>): string {
  return sql.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => {
    const value = markers[key];
    if (value === undefined) throw new Error(`migration uses unknown marker ${whole}`);
    return value;
  });
}
