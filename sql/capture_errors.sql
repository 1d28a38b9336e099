--
-- capture_errors: every bad input to track() and untrack(), with its
-- SQLSTATE, message, detail and hint
--

CREATE TABLE good (id int PRIMARY KEY, name text, code text);
CREATE TABLE nokey (id int, name text);
CREATE VIEW good_view AS SELECT * FROM good;
CREATE MATERIALIZED VIEW good_mview AS SELECT * FROM good;
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_server FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE remote_orders (id int) SERVER dummy_server;
CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
CREATE TEMPORARY TABLE session_only (id int PRIMARY KEY);
CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child () INHERITS (parent);
CREATE SEQUENCE some_seq;

\pset format unaligned
\pset tuples_only on
-- relations that cannot be tracked
SELECT try($$SELECT mfgsync.track('no_such_table', 'X')$$);
SELECT try($$SELECT mfgsync.track(987654::oid::regclass, 'X')$$);
SELECT try($$SELECT mfgsync.track(NULL, 'X')$$);
SELECT try($$SELECT mfgsync.track('good_view', 'X')$$);
SELECT try($$SELECT mfgsync.track('good_mview', 'X')$$);
SELECT try($$SELECT mfgsync.track('remote_orders', 'X')$$);
SELECT try($$SELECT mfgsync.track('scratch', 'X')$$);
SELECT try($$SELECT mfgsync.track('session_only', 'X')$$);
SELECT try($$SELECT mfgsync.track('parted', 'X')$$);
SELECT try($$SELECT mfgsync.track('parted_1', 'X')$$);
SELECT try($$SELECT mfgsync.track('parent', 'X')$$);
SELECT try($$SELECT mfgsync.track('child', 'X')$$);
SELECT try($$SELECT mfgsync.track('some_seq', 'X')$$);
SELECT try($$SELECT mfgsync.track('good_pkey', 'X')$$);

-- message types
SELECT try($$SELECT mfgsync.track('good', NULL)$$);
SELECT try($$SELECT mfgsync.track('good', '')$$);
SELECT try($$SELECT mfgsync.track('good', '1Order')$$);
SELECT try($$SELECT mfgsync.track('good', 'Production Order')$$);
SELECT try($$SELECT mfgsync.track('good', 'Order"; DROP TABLE good; --')$$);
SELECT try($$SELECT mfgsync.track('good', repeat('a', 64))$$);
SELECT try($$SELECT mfgsync.track('good', repeat('a', 63))$$);

-- keys
SELECT try($$SELECT mfgsync.track('nokey', 'X')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{id,nope}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{id,NULL}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{id,id}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{ctid}')$$);
SELECT try($$SELECT mfgsync.track('nokey', 'X', '{id}')$$);

-- mappings
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '[]')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '"id"')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"nope": "Nope"}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"id": 1}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"id": ""}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"id": null}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"id": "ID", "name": "ID"}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', '{id,code}', '{"id": "code"}')$$);
SELECT try($$SELECT mfgsync.track('good', 'X', NULL, '{"id": "ID", "name": "Name"}')$$);

-- untrack
SELECT try($$SELECT mfgsync.untrack('nokey')$$);
SELECT try($$SELECT mfgsync.untrack('good')$$);
SELECT try($$SELECT mfgsync.untrack('good')$$);

-- the capture function only works as the trigger track() creates
SELECT try($$SELECT mfgsync.capture()$$);
SELECT try($$CREATE TRIGGER bad_row AFTER INSERT ON nokey FOR EACH ROW
             EXECUTE FUNCTION mfgsync.capture('X', 'error', '1', 'id', '*')$$);
SELECT try($$INSERT INTO nokey VALUES (1, 'a')$$);
DROP TRIGGER bad_row ON nokey;
SELECT try($$CREATE TRIGGER bad_nott AFTER INSERT ON nokey FOR EACH STATEMENT
             EXECUTE FUNCTION mfgsync.capture('X', 'error', '1', 'id', '*')$$);
SELECT try($$INSERT INTO nokey VALUES (1, 'a')$$);
DROP TRIGGER bad_nott ON nokey;
SELECT try($$CREATE TRIGGER bad_args AFTER INSERT ON nokey REFERENCING NEW TABLE AS n
             FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture('X')$$);
SELECT try($$INSERT INTO nokey VALUES (1, 'a')$$);
DROP TRIGGER bad_args ON nokey;
-- a key count past the arguments, also one that would overflow an int
SELECT try($$CREATE TRIGGER bad_nkeys AFTER INSERT ON nokey REFERENCING NEW TABLE AS n
             FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture('X', 'error', '2147483647', 'id', '*')$$);
SELECT try($$INSERT INTO nokey VALUES (1, 'a')$$);
DROP TRIGGER bad_nkeys ON nokey;
SELECT try($$CREATE TRIGGER bad_col AFTER INSERT ON nokey REFERENCING NEW TABLE AS n
             FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture('X', 'error', '1', 'gone', '*')$$);
SELECT try($$INSERT INTO nokey VALUES (1, 'a')$$);
DROP TRIGGER bad_col ON nokey;
SELECT count(*) FROM nokey;
\pset format aligned
\pset tuples_only off

DROP TABLE good, nokey, scratch, parted, parent, child CASCADE;
DROP FOREIGN TABLE remote_orders;
DROP SERVER dummy_server;
DROP FOREIGN DATA WRAPPER dummy_fdw;
SELECT count(*) FROM mfgsync.tracked;
SELECT count(*) FROM take_events();
