--
-- capture: events written by the capture trigger
--
CREATE TABLE production_order (
    order_code   text PRIMARY KEY,
    product_code text NOT NULL,
    machine_code text,
    quantity     numeric(12,3),
    unit         text,
    "start"      timestamptz,
    "end"        timestamptz,
    note         text
);
SELECT mfgsync.track('production_order', 'ProductionOrder');
SELECT relation, message_type, key_columns, columns, truncate_event
  FROM mfgsync.tracked_tables;
SELECT tgname, tgtype, tgenabled FROM pg_trigger
 WHERE tgrelid = 'production_order'::regclass ORDER BY tgname;

-- one event per row, in the statement's transaction
INSERT INTO production_order VALUES
    ('PO-1', 'P-100', 'M-1', 10, 'pcs', '2026-11-23 06:00+01', '2026-11-23 14:00+01', NULL),
    ('PO-2', 'P-200', 'M-2', 2.5, 'kg', '2026-11-23 06:00+01', NULL, 'rush');
SELECT * FROM take_events();

-- Change carries the whole mapped row, new and old
UPDATE production_order SET machine_code = 'M-3' WHERE order_code = 'PO-1';
SELECT * FROM take_events();

-- an update that changes nothing emits nothing
UPDATE production_order SET machine_code = 'M-3' WHERE order_code = 'PO-1';
UPDATE production_order SET quantity = 10.000 WHERE order_code = 'PO-1';
SELECT count(*) FROM take_events();

-- the same stored value is no change (numeric(12,3) stored 2.5 as 2.500)
UPDATE production_order SET quantity = 2.500 WHERE order_code = 'PO-2';
SELECT count(*) FROM take_events();

-- a multi-row update emits only for the rows that changed
UPDATE production_order SET unit = 'kg';
SELECT * FROM take_events();

-- a key change is a Delete of the old key, then an Add of the new one
UPDATE production_order SET order_code = 'PO-1A' WHERE order_code = 'PO-1';
SELECT action, key, data, old_data FROM take_events();

-- created_at is when the changing statement started, in its transaction
BEGIN;
UPDATE production_order SET note = 'timed' WHERE order_code = 'PO-1A';
SELECT created_at >= transaction_timestamp() AND created_at < statement_timestamp()
       AS during_the_update
  FROM mfgsync.events;
COMMIT;
SELECT count(*) FROM take_events();

DELETE FROM production_order WHERE order_code = 'PO-2';
SELECT * FROM take_events();

-- rolled-back work leaves no event
BEGIN;
INSERT INTO production_order (order_code, product_code) VALUES ('PO-X', 'P-1');
ROLLBACK;
SELECT count(*) FROM take_events();

-- subtransactions: what is rolled back to a savepoint leaves no event; all
-- events of a transaction carry its top-level transaction id
BEGIN;
SELECT pg_current_xact_id() AS top_xid \gset
INSERT INTO production_order (order_code, product_code) VALUES ('PO-3', 'P-3');
SAVEPOINT s1;
INSERT INTO production_order (order_code, product_code) VALUES ('PO-4', 'P-4');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
UPDATE production_order SET note = 'kept' WHERE order_code = 'PO-3';
RELEASE SAVEPOINT s2;
COMMIT;
SELECT bool_and(txid = :'top_xid'::xid8) AS same_top_level_xid, count(*)
  FROM mfgsync.events;
SELECT action, key, data->'note' AS note FROM take_events();

-- an error in the statement after the trigger ran rolls the events back
BEGIN;
UPDATE production_order SET note = 'lost' WHERE order_code = 'PO-3';
SELECT 1 / 0;
COMMIT;
SELECT count(*) FROM take_events();

-- INSERT ... ON CONFLICT: Change for existing keys, Add for new ones
INSERT INTO production_order (order_code, product_code) VALUES ('PO-3', 'P-33'), ('PO-5', 'P-5')
ON CONFLICT (order_code) DO UPDATE SET product_code = excluded.product_code;
SELECT action, key, data->'product_code' AS product_code FROM take_events();

-- MERGE
CREATE TABLE incoming (order_code text, product_code text);
INSERT INTO incoming VALUES ('PO-5', 'P-55'), ('PO-6', 'P-6');
MERGE INTO production_order o USING incoming i ON o.order_code = i.order_code
WHEN MATCHED THEN UPDATE SET product_code = i.product_code
WHEN NOT MATCHED THEN INSERT (order_code, product_code) VALUES (i.order_code, i.product_code);
SELECT action, key, data->'product_code' AS product_code FROM take_events();

-- COPY and INSERT ... SELECT write one event per row, in row order
COPY production_order (order_code, product_code, quantity) FROM stdin;
PO-7	P-7	7
PO-8	P-8	8
\.
SELECT action, key FROM take_events();
COPY production_order (order_code, product_code)
FROM PROGRAM 'seq -f C-%g,P-1 1 2500' WITH (FORMAT csv);
SELECT count(*), count(DISTINCT key),
       bool_and(key->>'order_code' = 'C-' || n) AS in_row_order
  FROM (SELECT key, row_number() OVER () AS n FROM take_events()) e;
DELETE FROM production_order WHERE order_code LIKE 'C-%';
SELECT count(*) FROM take_events();
INSERT INTO production_order (order_code, product_code)
SELECT 'B-' || g, 'P-1' FROM generate_series(1, 3000) g;
SELECT count(*), count(DISTINCT key),
       bool_and(key->>'order_code' = 'B-' || n) AS in_row_order
  FROM (SELECT key, row_number() OVER () AS n FROM take_events()) e;
DELETE FROM production_order WHERE order_code LIKE 'B-%';
SELECT count(*) FILTER (WHERE action = 'Delete') FROM take_events();

-- TRUNCATE is refused ...
TRUNCATE production_order;
SELECT count(*) FROM production_order;

-- ... unless the table opted into a Truncate event
SELECT mfgsync.track('production_order', 'ProductionOrder', truncate_event => true);
BEGIN;
TRUNCATE production_order;
SELECT * FROM take_events();
ROLLBACK;

-- a mapping: only these columns, under domain names; the key appears under
-- its domain name too
SELECT mfgsync.track('production_order', 'ProductionOrder', NULL,
                     '{"order_code": "ID", "product_code": "MaterialDefinitionID",
                       "machine_code": "EquipmentID", "start": "EarliestStartTime"}');
SELECT relation, message_type, key_columns, columns FROM mfgsync.tracked_tables;
-- triggers were replaced, not added
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'production_order'::regclass;
UPDATE production_order SET machine_code = 'M-9', note = 'x' WHERE order_code = 'PO-3';
SELECT * FROM take_events();
-- an unmapped column changes nothing that is captured
UPDATE production_order SET note = 'y', quantity = 99 WHERE order_code = 'PO-3';
SELECT count(*) FROM take_events();

-- explicit key columns, not necessarily the primary key
CREATE TABLE booking (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_code   text NOT NULL,
    event        text NOT NULL CHECK (event IN ('START', 'END')),
    machine_code text,
    booked_at    timestamptz NOT NULL
);
SELECT mfgsync.track('booking', 'ProductionPerformance', '{order_code,event,booked_at}',
                     '{"order_code": "ProductionRequestID", "event": "Event",
                       "booked_at": "Time"}');
INSERT INTO booking (order_code, event, machine_code, booked_at)
VALUES ('PO-3', 'START', 'M-1', '2026-11-23 06:02:00+01');
SELECT * FROM take_events();

-- a column that is mapped or in the key cannot be dropped or renamed ...
ALTER TABLE production_order DROP COLUMN machine_code;
ALTER TABLE production_order RENAME COLUMN product_code TO product;
ALTER TABLE booking RENAME COLUMN booked_at TO at;
-- ... other columns can
ALTER TABLE production_order DROP COLUMN note;
ALTER TABLE production_order ADD COLUMN note text;
-- with every column tracked, new columns are captured
SELECT mfgsync.track('production_order', 'ProductionOrder');
ALTER TABLE production_order ADD COLUMN priority int DEFAULT 1;
UPDATE production_order SET priority = 2 WHERE order_code = 'PO-3';
SELECT action, data->'priority' AS priority, old_data->'priority' AS old_priority
  FROM take_events();

-- a column type change is picked up at once
ALTER TABLE production_order ALTER COLUMN priority TYPE numeric(5,2);
UPDATE production_order SET priority = 2.5 WHERE order_code = 'PO-3';
SELECT action, data->'priority' AS priority FROM take_events();

-- keys shifted through each other in one statement (a deferrable key is
-- checked at its end): all Deletes come first, so a receiver that replays
-- the events ends with the table's rows
CREATE TABLE shift (id int PRIMARY KEY DEFERRABLE, v text);
SELECT mfgsync.track('shift', 'Shift');
INSERT INTO shift VALUES (1, 'a'), (2, 'b');
SELECT count(*) FROM take_events();
UPDATE shift SET id = id + 1;
SELECT action, key, data FROM take_events();

-- what track() refuses cannot happen to a tracked table later
CREATE TABLE shift_parted (id int, v text) PARTITION BY RANGE (id);
ALTER TABLE shift_parted ATTACH PARTITION shift FOR VALUES FROM (0) TO (100);
CREATE TABLE shift_child () INHERITS (shift);
CREATE TABLE shift_base (id int, v text);
ALTER TABLE shift INHERIT shift_base;
ALTER TABLE shift SET UNLOGGED;
DROP TABLE shift, shift_parted, shift_base;

-- untrack: no more events; events already captured stay
UPDATE production_order SET priority = 3 WHERE order_code = 'PO-3';
SELECT mfgsync.untrack('production_order');
UPDATE production_order SET priority = 4 WHERE order_code = 'PO-3';
SELECT action, data->'priority' AS priority FROM take_events();
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'production_order'::regclass;
SELECT relation FROM mfgsync.tracked_tables;
TRUNCATE production_order;

-- DROP TABLE of a tracked table leaves no trace in mfgsync.tracked
DROP TABLE booking;
SELECT count(*) FROM mfgsync.tracked;
