import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OID, dateDays, daysFromCivil, timeMicros, timestampMicros, timestamptzIso, valueWriter } from '../../src/cdc/postgres/column-values.js';

describe('column values (PostgreSQL text → lossless JSON)', () => {
  it('timestamp → epoch microseconds, exact to the microsecond, whatever the process TZ', () => {
    assert.equal(timestampMicros('2024-05-01 10:00:00.123456'), String(Date.UTC(2024, 4, 1, 10) * 1000 + 123456));
    assert.equal(timestampMicros('1970-01-01 00:00:00'), '0');
    assert.equal(timestampMicros('1969-12-31 23:59:59.999999'), '-1');
    assert.equal(timestampMicros('2024-02-29 00:00:00.5'), String(Date.UTC(2024, 1, 29) * 1000 + 500000));
    assert.equal(timestampMicros('0001-01-01 00:00:00 BC'), '-62167219200000000'); // year 0, proleptic Gregorian
    assert.equal(timestampMicros('9999-12-31 23:59:59.999999'), '253402300799999999'); // above 2^53
    assert.equal(timestampMicros('infinity'), '9223372036854775807');
  });

  it('timestamptz → ISO-8601 UTC', () => {
    assert.equal(timestamptzIso('2024-05-01 10:00:00.123456+00'), '"2024-05-01T10:00:00.123456Z"');
    assert.equal(timestamptzIso('2024-05-01 12:30:00+02:30'), '"2024-05-01T10:00:00Z"');
    assert.equal(timestamptzIso('2024-01-01 00:30:00-01'), '"2024-01-01T01:30:00Z"');
    assert.equal(timestamptzIso('1900-01-01 00:00:00+00:53:28'), '"1899-12-31T23:06:32Z"');
    assert.equal(timestamptzIso('infinity'), '"infinity"');
  });

  it('date → epoch days; time → microseconds of the day', () => {
    assert.equal(dateDays('1970-01-02'), '1');
    assert.equal(dateDays('1969-12-31'), '-1');
    assert.equal(dateDays('2000-03-01'), String(Date.UTC(2000, 2, 1) / 86_400_000));
    assert.equal(daysFromCivil(2024, 12, 31), Date.UTC(2024, 11, 31) / 86_400_000);
    assert.equal(timeMicros('23:59:59.000001'), '86399000001');
  });

  it('int8 above 2^53 keeps every digit; numeric stays a string; bool, bytea, floats', () => {
    assert.equal(valueWriter(OID.int8)('9007199254740993'), '9007199254740993');
    assert.equal(`{"v":${valueWriter(OID.int8)('-9223372036854775808')}}`, '{"v":-9223372036854775808}');
    assert.equal(valueWriter(OID.numeric)('12345678901234567890.000000001'), '"12345678901234567890.000000001"');
    assert.equal(valueWriter(OID.bool)('t'), 'true');
    assert.equal(valueWriter(OID.bool)('f'), 'false');
    assert.equal(valueWriter(OID.bytea)('\\x00ff10'), `"${Buffer.from([0, 255, 16]).toString('base64')}"`);
    assert.equal(valueWriter(OID.float8)('NaN'), '"NaN"');
    assert.equal(valueWriter(OID.float8)('1.5e+300'), '1.5e+300');
    assert.equal(valueWriter(25)('he said "hi"\n'), '"he said \\"hi\\"\\n"');
  });

  it('arrays of scalars → JSON arrays of the element mapping (Debezium), NULLs and quoting kept', () => {
    assert.equal(valueWriter(1016)('{1,9007199254740993,NULL}'), '[1,9007199254740993,null]');
    assert.equal(valueWriter(1009)('{a,"b c","with \\"quote\\"",NULL,"NULL"}'), '["a","b c","with \\"quote\\"",null,"NULL"]');
    assert.equal(valueWriter(1007)('{{1,2},{3,4}}'), '[[1,2],[3,4]]');
    assert.equal(valueWriter(1007)('[0:1]={5,6}'), '[5,6]');
    assert.equal(valueWriter(1007)('{}'), '[]');
    assert.equal(valueWriter(1115)('{"2024-05-01 10:00:00.000001"}'), '[1714557600000001]');
    assert.equal(valueWriter(1231)('{1.50,-2}'), '["1.50","-2"]');
  });
});
