-- test/bench/setup.sql - schema of the benchmark database (read by run.sh).
--
-- Five copies of pgbench_accounts (100,000 rows, scale 1) that differ only
-- in how their changes are captured:
--
--   accounts_plain    nothing (baseline)
--   accounts_mfgsync  mfgsync.track(): C statement-level capture trigger
--   accounts_plpgsql  PL/pgSQL row trigger writing to_jsonb(NEW) to an outbox
--   accounts_pgq      PgQ's C row trigger pgq.logutriga
--   accounts_rowonly  no trigger: run.sh's UPDATE statement itself inserts a
--                     row the size of mfgsync's event, as constants, into
--                     bench_event_rows (writing the event through SQL, with
--                     nothing rendered and one index)
--
-- pgbench -i -s 1 has filled pgbench_accounts before this script runs.

\set ON_ERROR_STOP 1

CREATE EXTENSION mfgsync;
CREATE EXTENSION pgq;

-- the five tables, same shape, same rows, same physical layout
CREATE TABLE accounts_plain   (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE accounts_mfgsync (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE accounts_plpgsql (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE accounts_pgq     (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
CREATE TABLE accounts_rowonly (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
INSERT INTO accounts_plain   SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid;
INSERT INTO accounts_mfgsync SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid;
INSERT INTO accounts_plpgsql SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid;
INSERT INTO accounts_pgq     SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid;
INSERT INTO accounts_rowonly SELECT aid, bid, abalance, filler FROM pgbench_accounts ORDER BY aid;
DROP TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history;

-- b. mfgsync
SELECT mfgsync.track('accounts_mfgsync', 'Account');

-- c. the hand-written equivalent: a PL/pgSQL row trigger and its outbox
CREATE TABLE bench_plpgsql_outbox (
    id         bigserial PRIMARY KEY,
    txid       xid8 DEFAULT pg_current_xact_id(),
    op         text,
    payload    jsonb,
    created_at timestamptz DEFAULT now()
);

CREATE FUNCTION bench_plpgsql_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO bench_plpgsql_outbox (op, payload) VALUES (TG_OP, to_jsonb(OLD));
    ELSE
        INSERT INTO bench_plpgsql_outbox (op, payload) VALUES (TG_OP, to_jsonb(NEW));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER bench_plpgsql_capture
    AFTER INSERT OR UPDATE OR DELETE ON accounts_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_plpgsql_capture();

-- d. PgQ
SELECT pgq.create_queue('bench');
CREATE TRIGGER bench_pgq_capture
    AFTER INSERT OR UPDATE OR DELETE ON accounts_pgq
    FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench');

-- the bulk test's production-order shaped table is created per run by run.sh

-- e. event rows: a table like the outbox, with its id index only; run.sh's
-- UPDATE of accounts_rowonly inserts one constant event-sized row per row
-- updated (ids from a sequence cached per session, like mfgsync's blocks)
CREATE TABLE bench_event_rows (LIKE mfgsync.outbox);
CREATE INDEX ON bench_event_rows (id);
CREATE SEQUENCE bench_event_rows_seq CACHE 1000;
