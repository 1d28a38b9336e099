--
-- capture_types: exact JSON rendering of every kind of value
--
CREATE TYPE shift AS ENUM ('early', 'late', 'night');
CREATE DOMAIN quantity AS numeric(14,3) CHECK (VALUE >= 0);
CREATE DOMAIN code AS text CHECK (VALUE ~ '^[A-Z]');
CREATE TYPE dimension AS (value numeric, unit text);

CREATE TABLE typed (
    id      int PRIMARY KEY,
    n       numeric,
    i2      smallint,
    i8      bigint,
    f4      real,
    f8      double precision,
    b       boolean,
    d       date,
    ts      timestamp,
    tstz    timestamptz,
    t       text,
    vc      varchar(20),
    c       char(4),
    by      bytea,
    ia      int[],
    ta      text[],
    ma      int[],
    js      json,
    jb      jsonb,
    e       shift,
    q       quantity,
    dc      code,
    comp    dimension,
    u       uuid,
    iv      interval
);
SELECT mfgsync.track('typed', 'Typed');

SET TimeZone = 'Europe/Berlin';
SET bytea_output = 'escape';    -- rendering does not depend on it
SET extra_float_digits = -15;   -- nor on this (floats are never rounded)
INSERT INTO typed VALUES (
    1,
    12345678901234567890.123456789012345678901234567890,
    -32768,
    9223372036854775807,
    1.1,
    0.1,
    true,
    '2026-11-21',
    '2026-11-21 08:00:00.123456',
    '2026-07-01 06:00:00+00',
    E'quote " backslash \\ slash / newline \n tab \t bell \x07 umlaut äöü euro € emoji 😀',
    'varchar',
    'ab',
    '\x00ff10'::bytea,
    '{1,NULL,3}',
    '{"a","b,c",NULL,"d\"e"}',
    '{{1,2},{3,4}}',
    '{"k": [1, 2.50,  "x"]}',
    '{"k": [1, 2.50, "x"]}',
    'night',
    1.5,
    'Code',
    ROW(12.50, 'mm'),
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '1 day 02:00:00'
);
-- special values: NaN, infinities, empty array and string, all NULLs
INSERT INTO typed (id, n, f4, f8, d, tstz, t, ia, ta)
VALUES (2, 'NaN', '-Infinity', 'Infinity', 'infinity', '-infinity', '', '{}', '{""}');
INSERT INTO typed (id) VALUES (3);

-- the JSON text exactly as stored in the outbox
SELECT data FROM mfgsync.outbox ORDER BY id;

-- it is valid JSON and equal to to_jsonb() of the row, for every type
-- (to_jsonb follows bytea_output; with the default they agree)
RESET bytea_output;
RESET extra_float_digits;
SELECT o.key::jsonb ->> 'id' AS id,
       o.data::jsonb = to_jsonb(typed) AS same_as_to_jsonb
  FROM mfgsync.outbox o JOIN typed ON typed.id = (o.key::jsonb ->> 'id')::int
 ORDER BY 1;

-- old values render the same way
CREATE TEMP TABLE typed_before AS SELECT * FROM typed WHERE id = 1;
UPDATE typed SET n = n + 1, by = '\xdeadbeef' WHERE id = 1;
SELECT action, data->'n' AS n, old_data->'n' AS old_n, data->'by' AS by,
       old_data->'by' AS old_by
  FROM mfgsync.events WHERE action = 'Change';
-- a Change carries every type as an Add does: data and old_data equal
-- to_jsonb() of the row after and before the update
SELECT o.data::jsonb = to_jsonb(after_row) AS data_same,
       o.old_data::jsonb = to_jsonb(before_row) AS old_data_same
  FROM mfgsync.outbox o, typed after_row, typed_before before_row
 WHERE o.action = 'Change' AND after_row.id = 1;
-- and so does a Delete: old_data equals to_jsonb() of the deleted row
CREATE TEMP TABLE typed_deleted AS SELECT * FROM typed WHERE id IN (1, 2, 3);
UPDATE typed_deleted SET id = id + 10;
INSERT INTO typed SELECT * FROM typed_deleted;
DELETE FROM typed WHERE id > 10;
SELECT deleted_row.id, o.old_data::jsonb = to_jsonb(deleted_row) AS old_data_same,
       o.data IS NULL AS no_data
  FROM mfgsync.outbox o
       JOIN typed_deleted deleted_row ON deleted_row.id = (o.key::jsonb ->> 'id')::int
 WHERE o.action = 'Delete'
 ORDER BY deleted_row.id;

-- a float change that a rounded rendering would hide is captured, exactly
SET extra_float_digits = -15;
UPDATE typed SET f8 = 0.1::float8 + 0.2, f4 = 1.0000001 WHERE id = 1;
UPDATE typed SET f8 = 0.3, f4 = 1 WHERE id = 1;
RESET extra_float_digits;
SELECT data->'f8' AS f8, old_data->'f8' AS old_f8, data->'f4' AS f4,
       old_data->'f4' AS old_f4
  FROM mfgsync.events WHERE action = 'Change' ORDER BY id DESC LIMIT 2;

-- a key of several types renders as one object
SELECT mfgsync.track('typed', 'Typed', '{d,id,e}', '{"id": "ID", "t": "Text"}');
UPDATE typed SET t = 'changed' WHERE id = 1;
SELECT key, data FROM mfgsync.outbox WHERE action = 'Change' ORDER BY id DESC LIMIT 1;

-- a large value is stored out of line (TOAST) and comes back whole
INSERT INTO typed (id, t)
SELECT 4, string_agg(md5(g::text), '') FROM generate_series(1, 5000) g;
SELECT length(e.data->>'Text') AS length, e.data->>'Text' = t.t AS intact
  FROM mfgsync.events e JOIN typed t ON t.id = 4
 WHERE e.key->>'ID' = '4';
SELECT pg_relation_size(reltoastrelid) > 0 AS toasted
  FROM pg_class WHERE oid = 'mfgsync.outbox'::regclass;

RESET TimeZone;
DROP TABLE typed;
SELECT count(*) FROM take_events() WHERE message_type = 'Typed';

-- strings are escaped exactly as to_json escapes them: every ASCII
-- character and some beyond, in text, varchar, char, a domain over text
-- and a text array
CREATE TABLE strings (id int PRIMARY KEY, t text, vc varchar(10), c char(3),
                      dc code, ta text[]);
SELECT mfgsync.track('strings', 'Strings');
INSERT INTO strings
SELECT g, 'a' || chr(g) || 'b', chr(g), chr(g), 'A' || chr(g), ARRAY[chr(g), 'x' || chr(g)]
  FROM generate_series(1, 127) g
UNION ALL
SELECT 128, 'ä€😀', 'ä', '€', 'A😀', '{"\"\\\\"}';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE (o.data::json -> 't')::text = to_json(s.t)::text
                          AND (o.data::json -> 'vc')::text = to_json(s.vc)::text
                          AND (o.data::json -> 'c')::text = to_json(s.c)::text
                          AND (o.data::json -> 'dc')::text = to_json(s.dc)::text
                          AND (o.data::json -> 'ta')::text = to_json(s.ta)::text)
           AS same_text_as_to_json
  FROM mfgsync.outbox o JOIN strings s ON s.id = (o.key::jsonb ->> 'id')::int
 WHERE o.message_type = 'Strings';
DROP TABLE strings;
SELECT count(*) FROM take_events() WHERE message_type = 'Strings';
