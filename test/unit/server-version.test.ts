import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/core/exit-codes.js';
import { checkFailoverSupported, checkSupportedServer, createSlotCommand, slotFailoverColumn, type ServerVersion } from '../../src/cdc/postgres/server-version.js';

const server = (num: number): ServerVersion => ({ num, major: Math.floor(num / 10_000), text: `${Math.floor(num / 10_000)}.${num % 100}` });

describe('server version', () => {
  it('creates the slot with EXPORT_SNAPSHOT on 13 and 14, which lack the option list', () => {
    assert.equal(createSlotCommand('"s"', server(130022), { failover: false }), 'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput EXPORT_SNAPSHOT');
    assert.equal(createSlotCommand('"s"', server(140019), { failover: false }), 'CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput EXPORT_SNAPSHOT');
  });
  it("creates the slot with (SNAPSHOT 'export') from 15 on", () => {
    assert.equal(createSlotCommand('"s"', server(150014), { failover: false }), `CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput (SNAPSHOT 'export')`);
    assert.equal(createSlotCommand('"s"', server(170006), { failover: false }), `CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput (SNAPSHOT 'export')`);
  });
  it('adds FAILOVER on 17', () => {
    assert.equal(createSlotCommand('"s"', server(170006), { failover: true }), `CREATE_REPLICATION_SLOT "s" LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)`);
  });
  it('refuses failover before 17, naming the version it needs and the one it found', () => {
    for (const num of [130022, 140019, 160010]) {
      assert.throws(() => createSlotCommand('"s"', server(num), { failover: true }), (error: Error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /--failover needs PostgreSQL 17 or later/);
        assert.match(error.message, new RegExp(`this server is PostgreSQL ${Math.floor(num / 10_000)}\\.`));
        return true;
      });
    }
    assert.doesNotThrow(() => checkFailoverSupported(server(170000)));
  });
  it('reads the failover flag only where pg_replication_slots has it', () => {
    assert.equal(slotFailoverColumn(server(160010)), 'NULL::boolean AS failover');
    assert.equal(slotFailoverColumn(server(170006)), 'failover');
  });
  it('refuses servers older than 13', () => {
    assert.throws(() => checkSupportedServer(server(120020)), /PostgreSQL 12\.20 is not supported: walbridge needs PostgreSQL 13 or later/);
    assert.doesNotThrow(() => checkSupportedServer(server(130000)));
  });
});
