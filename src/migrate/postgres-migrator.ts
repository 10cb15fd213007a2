/**
 * Applies migrations/postgres/*.sql in one transaction per file, recorded in
 * walbridge_schema_migrations; an advisory lock keeps two runs from racing.
 */
import type pg from 'pg';
import { readMigrations } from './migration-files.js';

const LOCK_KEY = 0x57414c42; // 'WALB'

export async function migratePostgres(client: pg.Client): Promise<string[]> {
  await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS walbridge_schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM walbridge_schema_migrations')).rows.map((r) => r.name));
    const applied: string[] = [];
    for (const file of await readMigrations('postgres')) {
      if (done.has(file.name)) continue;
      await client.query('BEGIN');
      try {
        await client.query(file.sql);
        await client.query('INSERT INTO walbridge_schema_migrations (name) VALUES ($1)', [file.name]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`PostgreSQL migration ${file.name} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(file.name);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]);
  }
}
