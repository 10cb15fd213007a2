import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fillMarkers, readMigrations, splitStatements } from '../../src/migrate/migration-files.js';
import { ddlMarkers, featuresOf } from '../../src/sink/clickhouse/schema.js';

describe('migration files', () => {
  it('finds the repository migrations in name order', async () => {
    const files = await readMigrations('clickhouse');
    assert.ok(files.length > 0);
    assert.deepEqual(files.map((f) => f.name), [...files.map((f) => f.name)].sort());
  });
  it('splits statements at line-ending semicolons and drops comments', () => {
    assert.deepEqual(splitStatements('-- c\nCREATE A;\n\n-- d\nCREATE B (x);\n'), ['CREATE A', 'CREATE B (x)']);
  });
  it('fills markers and refuses unknown ones', () => {
    assert.equal(fillMarkers('x {{A}} y', { A: '1' }), 'x 1 y');
    assert.throws(() => fillMarkers('{{B}}', {}), /unknown marker/);
  });
  it('picks DDL by server version', () => {
    assert.deepEqual(featuresOf('18.16.1'), {
      version: '18.16.1', dateTime64: false, replacingIsDeleted: false, decimal128: false, date32: false, omittedFieldDefaults: false,
    });
    assert.equal(ddlMarkers(featuresOf('24.8.4.13')).REPLACING_ENGINE, 'ReplacingMergeTree(_version, _is_deleted)');
    assert.equal(ddlMarkers(featuresOf('21.3.1')).DATETIME_US, "DateTime64(6, 'UTC')");
    assert.equal(ddlMarkers(featuresOf('21.3.1')).REPLACING_ENGINE, 'ReplacingMergeTree(_version)');
  });
});
