--
-- pull: pull jobs (create_pull, alter_pull, drop_pull, run_pull,
-- pull_runs), their checks and errors, MERGE semantics, the watermark,
-- delete detection and folding booking tables.  No job here has a
-- schedule, so the background worker never runs one (test/t/040_pull*.pl
-- covers scheduling and real remote databases).
--

-- events left by the tests before this one are not ours
SELECT count(*) >= 0 AS drained FROM take_events();

-- the remote MES order table stands in as a local table here
CREATE TABLE mes_order (order_code text PRIMARY KEY, product_code text,
                        qty integer, changed_at timestamptz);
CREATE TABLE stg_order (order_code text PRIMARY KEY, product_code text,
                        qty numeric, changed_at timestamptz,
                        note text DEFAULT 'local');
SELECT mfgsync.track('stg_order', 'ProductionOrder');
INSERT INTO mes_order VALUES
    ('O1', 'P1', 10, '2024-03-01 08:00+00'),
    ('O2', 'P2', 20, '2024-03-01 09:00+00'),
    ('O3', 'P1', 30, '2024-03-01 10:00+00');

--
-- options and errors
--
SELECT try($$SELECT mfgsync.create_pull('bad name', 'mes_order', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', '', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'no_such_table', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT * FROM mes_order; DROP TABLE mes_order', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT * FROM mes_order FOR UPDATE', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'WITH d AS (DELETE FROM mes_order RETURNING *) SELECT * FROM d', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT * INTO x FROM mes_order', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT order_code, order_code FROM mes_order', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT *, 1 AS extra FROM mes_order', 'stg_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT qty FROM mes_order', 'stg_order', '{order_code}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', '{}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', watermark => 'nope')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', every => '10 ms')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'mes_order')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'mfgsync.pull_runs')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"colour": 1}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '[]')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"delete_mode": "shred"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"delete_mode": "mark"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"delete_mode": "mark", "mark_column": "nope"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"delete_mode": "mark", "mark_column": "note"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"mark_column": "note"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"full_every": "soon"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"max_backoff": "-1 hour"}')$$);
SELECT try($$SELECT mfgsync.create_pull('p', 'mes_order', 'stg_order', options => '{"delete_on_empty": "yes"}')$$);
-- types that do not fit
CREATE TABLE stg_typed (order_code text PRIMARY KEY, qty point);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT order_code, qty FROM mes_order', 'stg_typed')$$);
-- a target without primary key needs key_columns
CREATE TABLE stg_nokey (order_code text, qty integer);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT order_code, qty FROM mes_order', 'stg_nokey')$$);
-- a NOT NULL target column the source does not fill
CREATE TABLE stg_strict (order_code text PRIMARY KEY, qty integer, plant text NOT NULL);
SELECT try($$SELECT mfgsync.create_pull('p', 'SELECT order_code, qty FROM mes_order', 'stg_strict')$$);
SELECT count(*) AS jobs_after_errors FROM mfgsync.pull_job;

--
-- MERGE semantics: counts, events only for real changes
--
SELECT mfgsync.create_pull('orders', 'mes_order', 'stg_order') > 0 AS created;
SELECT try($$SELECT mfgsync.create_pull('orders', 'mes_order', 'stg_order')$$);
SELECT name, source, target, key_columns, watermark, every, delete_missing, options
  FROM mfgsync.pull_jobs;
SELECT * FROM mfgsync.run_pull('orders');
SELECT action, key, data FROM take_events();
SELECT * FROM stg_order ORDER BY order_code;
-- nothing changed: nothing touched, no event
SELECT * FROM mfgsync.run_pull('orders');
SELECT count(*) AS events FROM take_events();
-- a local column is left alone; one changed row, one new row
UPDATE stg_order SET note = 'kept' WHERE order_code = 'O1';
SELECT count(*) FROM take_events();
UPDATE mes_order SET qty = 11 WHERE order_code = 'O1';
INSERT INTO mes_order VALUES ('O4', 'P4', 40, '2024-03-01 11:00+00');
SELECT * FROM mfgsync.run_pull('orders');
SELECT action, key, data ->> 'qty' AS qty, old_data ->> 'qty' AS old_qty FROM take_events();
SELECT order_code, qty, note FROM stg_order ORDER BY order_code;
-- without delete_missing a vanished row stays
DELETE FROM mes_order WHERE order_code = 'O4';
SELECT * FROM mfgsync.run_pull('orders');
SELECT count(*) FROM stg_order WHERE order_code = 'O4';
-- with it, it goes (one Delete event)
SELECT mfgsync.alter_pull('orders', '{"delete_missing": true}');
SELECT * FROM mfgsync.run_pull('orders');
SELECT action, key FROM take_events();
-- an empty source does not empty the target unless allowed
CREATE TABLE mes_empty (LIKE mes_order);
SELECT mfgsync.alter_pull('orders', '{"source": "mes_empty"}');
SELECT try($$SELECT mfgsync.run_pull('orders')$$);
SELECT count(*) AS still_there FROM stg_order;
SELECT mfgsync.alter_pull('orders', '{"source": "mes_order"}');
-- a source with two rows for one key is a clear error, the target untouched
SELECT mfgsync.create_pull('dups', 'SELECT order_code, qty + 1 AS qty FROM mes_order UNION ALL SELECT ''O1'', 0', 'stg_order');
SELECT try($$SELECT mfgsync.run_pull('dups')$$);
SELECT order_code, qty FROM stg_order ORDER BY 1;
SELECT mfgsync.drop_pull('dups');

-- delete by marking
CREATE TABLE stg_marked (order_code text PRIMARY KEY, qty integer, missing boolean NOT NULL DEFAULT false);
SELECT mfgsync.create_pull('marked', 'SELECT order_code, qty FROM mes_order', 'stg_marked',
                           delete_missing => true,
                           options => '{"delete_mode": "mark", "mark_column": "missing"}') > 0;
SELECT * FROM mfgsync.run_pull('marked');
DELETE FROM mes_order WHERE order_code = 'O3';
SELECT * FROM mfgsync.run_pull('marked');
SELECT * FROM stg_marked ORDER BY 1;
SELECT * FROM mfgsync.run_pull('marked');   -- marked once, not again
INSERT INTO mes_order VALUES ('O3', 'P1', 31, '2024-03-01 12:00+00');
SELECT * FROM mfgsync.run_pull('marked');   -- back: unmarked
SELECT * FROM stg_marked ORDER BY 1;

--
-- watermark: incremental reads, advancing only on commit
--
SELECT count(*) FROM take_events();
CREATE TABLE stg_inc (order_code text PRIMARY KEY, product_code text, qty integer, changed_at timestamptz);
SELECT mfgsync.create_pull('inc', 'mes_order', 'stg_inc', watermark => 'changed_at') > 0;
SELECT * FROM mfgsync.run_pull('inc');                  -- first run: full
SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'inc';
-- the predicate is a plain comparison with a literal
SELECT * FROM mfgsync.pull_explain('inc');
SELECT * FROM mfgsync.run_pull('inc');                  -- the boundary row only
UPDATE mes_order SET qty = 12, changed_at = '2024-03-02 08:00+00' WHERE order_code = 'O1';
-- a row changed at the same time as the watermark is not lost
UPDATE mes_order SET qty = 32 WHERE order_code = 'O3';
SELECT * FROM mfgsync.run_pull('inc');
SELECT order_code, qty FROM stg_inc ORDER BY 1;
-- a row changed without moving its watermark is not seen ...
UPDATE mes_order SET qty = 99 WHERE order_code = 'O2';
SELECT * FROM mfgsync.run_pull('inc');
-- ... until a full read
SELECT * FROM mfgsync.run_pull('inc', full_read => true);
SELECT order_code, qty FROM stg_inc ORDER BY 1;
-- a rolled-back run leaves the watermark and the target as they were
UPDATE mes_order SET qty = 13, changed_at = '2024-03-03 08:00+00' WHERE order_code = 'O1';
BEGIN;
SELECT * FROM mfgsync.run_pull('inc');
SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'inc';
ROLLBACK;
SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'inc';
SELECT qty FROM stg_inc WHERE order_code = 'O1';
-- two runs in one transaction
BEGIN;
SELECT * FROM mfgsync.run_pull('inc');
SELECT * FROM mfgsync.run_pull('inc');
COMMIT;
SELECT job, trigger, status, full_read, rows_read, rows_inserted, rows_updated,
       rows_deleted, watermark_from, watermark_to
  FROM mfgsync.pull_runs WHERE job = 'inc' ORDER BY id;
-- changing the watermark column forgets the watermark
SELECT mfgsync.alter_pull('inc', '{"watermark": null}');
SELECT watermark, last_watermark FROM mfgsync.pull_jobs WHERE name = 'inc';
SELECT try($$SELECT mfgsync.alter_pull('inc', '{"watermark": "nope"}')$$);
SELECT try($$SELECT mfgsync.alter_pull('inc', '{"colour": "red"}')$$);
SELECT try($$SELECT mfgsync.alter_pull('nope', '{}')$$);
SELECT try($$SELECT mfgsync.drop_pull('nope')$$);
SELECT try($$SELECT mfgsync.run_pull('nope')$$);

-- drift after create_pull: a clear error at the next run, nothing written
ALTER TABLE mes_order ADD COLUMN plant text;
SELECT try($$SELECT mfgsync.run_pull('inc')$$);
ALTER TABLE mes_order DROP COLUMN plant;
ALTER TABLE stg_inc RENAME COLUMN qty TO quantity;
SELECT try($$SELECT mfgsync.run_pull('inc')$$);
ALTER TABLE stg_inc RENAME COLUMN quantity TO qty;
SELECT (mfgsync.run_pull('inc')).rows_read;

-- names in a query source resolve in the creator's search_path
CREATE SCHEMA mes;
CREATE TABLE mes.machine (machine_code text PRIMARY KEY, name text);
INSERT INTO mes.machine VALUES ('M1', 'press');
CREATE TABLE stg_machine (machine_code text PRIMARY KEY, name text);
SET search_path = mes, public;
SELECT mfgsync.create_pull('machines', 'SELECT * FROM machine', 'stg_machine') > 0;
RESET search_path;
SELECT * FROM mfgsync.run_pull('machines');

-- a source that errors leaves the target as it was
CREATE FUNCTION boom(t text) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN IF t = 'M2' THEN RAISE EXCEPTION 'remote went away'; END IF; RETURN t; END $$;
SELECT mfgsync.alter_pull('machines', '{"source": "SELECT boom(machine_code) AS machine_code, name FROM mes.machine"}');
UPDATE mes.machine SET name = 'press 2';
INSERT INTO mes.machine VALUES ('M2', 'lathe');
SELECT try($$SELECT mfgsync.run_pull('machines')$$);
SELECT * FROM stg_machine;

-- privileges: runs use the caller's rights; the monitor sees the history
CREATE ROLE pull_admin IN ROLE mfgsync_admin;
CREATE ROLE pull_monitor IN ROLE mfgsync_monitor;
CREATE ROLE pull_nobody;
SET ROLE pull_nobody;
SELECT try($$SELECT mfgsync.run_pull('orders')$$);
SELECT try($$SELECT count(*) FROM mfgsync.pull_runs$$);
SET ROLE pull_monitor;
SELECT count(*) > 0 AS monitor_sees_runs FROM mfgsync.pull_runs;
SELECT try($$SELECT mfgsync.run_pull('orders')$$);
SET ROLE pull_admin;
-- another admin's job is not run under this admin's rights
SELECT try($$SELECT mfgsync.run_pull('orders')$$);
-- its own job reaches only what it may read
RESET ROLE;
CREATE TABLE pull_admin_stg (machine_code text PRIMARY KEY, name text);
ALTER TABLE pull_admin_stg OWNER TO pull_admin;
SET ROLE pull_admin;
SELECT try($$SELECT mfgsync.create_pull('admins', 'mes.machine', 'pull_admin_stg')$$);
RESET ROLE;
GRANT USAGE ON SCHEMA mes TO pull_admin;
GRANT SELECT ON mes.machine TO pull_admin;
SET ROLE pull_admin;
SELECT mfgsync.create_pull('admins', 'mes.machine', 'pull_admin_stg') > 0;
SELECT * FROM mfgsync.run_pull('admins');
RESET ROLE;
REVOKE SELECT ON mes.machine FROM pull_admin;
SET ROLE pull_admin;
SELECT try($$SELECT mfgsync.run_pull('admins')$$);
SELECT mfgsync.drop_pull('admins');
RESET ROLE;
DROP TABLE pull_admin_stg;

--
-- bookings folded into orders
--
CREATE TABLE booking (id serial, order_code text, product_code text,
                      machine_code text, event text, booked_at timestamptz);
INSERT INTO booking (order_code, product_code, machine_code, event, booked_at) VALUES
    -- a plain START/END
    ('A', 'PA', 'M1', 'START', '2024-03-01 08:00+00'),
    ('A', 'PA', 'M1', 'END',   '2024-03-01 09:00+00'),
    -- still running
    ('B', 'PB', 'M2', 'START', '2024-03-01 08:30+00'),
    -- arrived out of order: END first
    ('C', 'PC', 'M1', 'END',   '2024-03-01 12:00+00'),
    ('C', 'PC', 'M1', 'START', '2024-03-01 10:00+00'),
    -- interrupted, moved to another machine, finished
    ('D', 'PD', 'M1', 'START', '2024-03-01 06:00+00'),
    ('D', 'PD', 'M1', 'END',   '2024-03-01 07:00+00'),
    ('D', 'PD', 'M3', 'START', '2024-03-01 07:30+00'),
    ('D', 'PD', 'M3', 'END',   '2024-03-01 09:30+00'),
    -- interrupted and running again
    ('E', 'PE', 'M2', 'start', '2024-03-01 06:00+00'),
    ('E', 'PE', 'M2', 'end ',  '2024-03-01 07:00+00'),
    ('E', 'PE', 'M2', 'START', '2024-03-01 08:00+00'),
    -- duplicates
    ('F', 'PF', 'M4', 'START', '2024-03-01 08:00+00'),
    ('F', 'PF', 'M4', 'START', '2024-03-01 08:00+00'),
    ('F', 'PF', 'M4', 'END',   '2024-03-01 08:45+00'),
    ('F', 'PF', 'M4', 'END',   '2024-03-01 08:45+00'),
    -- only the END has arrived so far
    ('G', 'PG', 'M5', 'END',   '2024-03-01 10:00+00'),
    -- other events and incomplete rows are no order events
    ('H', 'PH', 'M5', 'PAUSE', '2024-03-01 10:00+00'),
    (NULL, 'PX', 'M5', 'START', '2024-03-01 10:00+00');
SELECT order_code, product_code, machine_code, start, "end", running, interruptions
  FROM mfgsync.fold_bookings('booking') ORDER BY 1;
-- column names of another MES
CREATE TABLE buchung (auftrag text, material text, maschine text, art text, zeit timestamptz);
INSERT INTO buchung VALUES ('X', 'MX', 'M9', 'START', '2024-03-01 08:00+00');
SELECT * FROM mfgsync.fold_bookings('buchung', '{"order_code": "auftrag", "product_code": "material",
    "machine_code": "maschine", "event": "art", "booked_at": "zeit"}');
SELECT try($$SELECT * FROM mfgsync.fold_bookings('buchung')$$);
SELECT try($$SELECT * FROM mfgsync.fold_bookings('booking', '{"colour": "x"}')$$);
-- as the source of a pull job into a tracked order table
CREATE TABLE stg_booked (order_code text PRIMARY KEY, product_code text, machine_code text,
                         start timestamptz, "end" timestamptz);
SELECT mfgsync.track('stg_booked', 'BookedOrder');
SELECT mfgsync.create_pull('booked',
    'SELECT order_code, product_code, machine_code, start, "end" FROM mfgsync.fold_bookings(''booking'')',
    'stg_booked', delete_missing => true) > 0;
SELECT * FROM mfgsync.run_pull('booked');
SELECT count(*) FROM take_events();
INSERT INTO booking (order_code, product_code, machine_code, event, booked_at)
    VALUES ('B', 'PB', 'M2', 'END', '2024-03-01 11:00+00');
SELECT * FROM mfgsync.run_pull('booked');
SELECT action, key, data ->> 'end' AS "end" FROM take_events();

-- dropping a job drops its history
SELECT count(*) > 0 FROM mfgsync.pull_run r JOIN mfgsync.pull_job j ON j.id = r.job_id WHERE j.name = 'orders';
SELECT mfgsync.drop_pull('orders');
SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'orders';

SELECT mfgsync.untrack('stg_order');
SELECT mfgsync.untrack('stg_booked');
SELECT mfgsync.drop_pull(name) FROM mfgsync.pull_jobs ORDER BY name;
DROP TABLE mes_order, mes_empty, stg_order, stg_typed, stg_nokey, stg_strict, stg_marked,
    stg_inc, stg_machine, booking, buchung, stg_booked;
DROP SCHEMA mes CASCADE;
DROP FUNCTION boom(text);
DROP ROLE pull_admin, pull_monitor, pull_nobody;
