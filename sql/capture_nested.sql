--
-- capture_nested: the events of a statement that a trigger runs come after
-- those of the statement that fired the trigger, as its changes do
--
CREATE TABLE po (id int PRIMARY KEY, qty int, status text);
SELECT mfgsync.track('po', 'PO');
INSERT INTO po VALUES (1, 10, 'new'), (2, 5, 'new');
SELECT count(*) FROM take_events();

-- an AFTER ROW trigger that changes the row again: the receiver must apply
-- qty 10 -> 20 first and status new -> changed last, or it ends with 'new'
CREATE FUNCTION po_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'new' THEN
        UPDATE po SET status = 'changed' WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER po_mark AFTER UPDATE ON po
    FOR EACH ROW EXECUTE FUNCTION po_mark();
UPDATE po SET qty = 20 WHERE id = 1;
SELECT action, data, old_data FROM take_events();

-- a statement run by a BEFORE trigger changed its rows first, so its events
-- come first, also in COPY ("replace": delete the row of the same key)
CREATE FUNCTION po_replace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM po WHERE id = NEW.id;
    RETURN NEW;
END $$;
CREATE TRIGGER po_replace BEFORE INSERT ON po
    FOR EACH ROW EXECUTE FUNCTION po_replace();
COPY po FROM stdin;
2	5	new
3	7	new
\.
SELECT action, data, old_data FROM take_events();
DROP TRIGGER po_replace ON po;

-- a user's statement trigger that sorts before mfgsync's fires first too
DROP TRIGGER po_mark ON po;
CREATE FUNCTION po_mark_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        UPDATE po SET status = 'changed' WHERE status = 'new';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER a_po_mark_all AFTER UPDATE ON po
    FOR EACH STATEMENT EXECUTE FUNCTION po_mark_all();
UPDATE po SET status = 'new', qty = qty + 1 WHERE id IN (1, 2);
SELECT action, data, old_data FROM take_events();
DROP TRIGGER a_po_mark_all ON po;

-- nesting three deep, twice: each statement's events, then those of the
-- statements its triggers ran, in the order they ran
CREATE TABLE chain (id int PRIMARY KEY, n int);
SELECT mfgsync.track('chain', 'Chain');
INSERT INTO chain VALUES (1, 0), (2, 0);
CREATE FUNCTION chain_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.n < 3 THEN
        UPDATE chain SET n = n + 1 WHERE id = NEW.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chain_next AFTER UPDATE ON chain
    FOR EACH ROW EXECUTE FUNCTION chain_next();
SELECT count(*) FROM take_events();
UPDATE chain SET n = 1;
SELECT key, old_data->'n' AS old_n, data->'n' AS n FROM take_events();

-- a foreign-key action's changes are captured with its statement's, before
-- those of a trigger that fires after it ("note" sorts after the foreign
-- key's RI_ConstraintTrigger_a_...)
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE line (id int PRIMARY KEY,
                   order_id int REFERENCES orders ON UPDATE CASCADE,
                   note text);
SELECT mfgsync.track('line', 'Line');
INSERT INTO orders VALUES (1);
INSERT INTO line VALUES (1, 1, NULL);
CREATE FUNCTION orders_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE line SET note = 'moved' WHERE order_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER note AFTER UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_note();
SELECT count(*) FROM take_events();
UPDATE orders SET id = 2;
SELECT action, data, old_data FROM take_events();
SELECT * FROM line;

-- a nested statement rolled back to a savepoint (an exception block)
-- leaves no event; one that succeeds in a released savepoint keeps its own
CREATE FUNCTION po_try() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        BEGIN
            UPDATE po SET status = 'tried' WHERE id = NEW.id;
            RAISE EXCEPTION 'undo';
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
        BEGIN
            UPDATE po SET status = 'kept' WHERE id = NEW.id;
        EXCEPTION WHEN division_by_zero THEN
            NULL;
        END;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER po_try AFTER UPDATE ON po
    FOR EACH ROW EXECUTE FUNCTION po_try();
UPDATE po SET qty = 0 WHERE id = 1;
SELECT action, data, old_data FROM take_events();
SELECT * FROM po WHERE id = 1;

-- a nested statement that fails after its capture ran, in the same
-- exception block: its events are dropped with it
CREATE FUNCTION po_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('test.fail', true) = 'on'
       AND EXISTS (SELECT FROM po WHERE status = 'tried') THEN
        RAISE EXCEPTION 'nested statement failed';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER zz_po_fail AFTER UPDATE ON po
    FOR EACH STATEMENT EXECUTE FUNCTION po_fail();
SET test.fail = on;
UPDATE po SET qty = 1, status = 'new' WHERE id = 1;
SELECT action, data, old_data FROM take_events();
RESET test.fail;
-- and the statements after it are ordered as before
UPDATE po SET qty = 2, status = 'new' WHERE id = 1;
SELECT action, data, old_data FROM take_events();
DROP TRIGGER po_try ON po;
DROP TRIGGER zz_po_fail ON po;

-- a TRUNCATE run by a trigger comes after the firing statement's events and
-- after those of the statements run before it
CREATE TABLE wiped (id int PRIMARY KEY);
SELECT mfgsync.track('wiped', 'Wiped', truncate_event => true);
CREATE FUNCTION po_wipe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wiped VALUES (NEW.id + 100);
    TRUNCATE wiped;
    INSERT INTO wiped VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER po_wipe AFTER INSERT ON po
    FOR EACH ROW EXECUTE FUNCTION po_wipe();
INSERT INTO po VALUES (4, 1, 'x');
SELECT message_type, action, key FROM take_events();
DROP TRIGGER po_wipe ON po;

-- so does a COPY run by a trigger (it fires its capture itself)
CREATE FUNCTION po_reload() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM wiped;
    COPY wiped FROM PROGRAM 'echo 4';
    RETURN NULL;
END $$;
CREATE TRIGGER po_reload AFTER INSERT ON po
    FOR EACH ROW EXECUTE FUNCTION po_reload();
INSERT INTO po VALUES (5, 1, 'y');
SELECT message_type, action, key FROM take_events();
SELECT * FROM wiped;
DROP TRIGGER po_reload ON po;

-- many nested events, spilled to disk inside a released savepoint, some
-- rolled back: all that committed are written, in the order of their rows
CREATE TABLE bulk (id int PRIMARY KEY);
SELECT mfgsync.track('bulk', 'Bulk');
CREATE TABLE bulk_request (n int);
CREATE FUNCTION bulk_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        INSERT INTO bulk SELECT g FROM generate_series(1, NEW.n) g;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
    BEGIN
        INSERT INTO bulk SELECT g FROM generate_series(NEW.n + 1, 2 * NEW.n) g;
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        NULL;
    END;
    INSERT INTO bulk SELECT g FROM generate_series(2 * NEW.n + 1, 3 * NEW.n) g;
    RETURN NULL;
END $$;
CREATE TRIGGER bulk_fill AFTER INSERT ON bulk_request
    FOR EACH ROW EXECUTE FUNCTION bulk_fill();
SET work_mem = '64kB';
BEGIN;
INSERT INTO bulk_request VALUES (20000);
SELECT count(*) AS events,
       count(*) FILTER (WHERE k BETWEEN 20001 AND 40000) AS rolled_back,
       bool_and(k = CASE WHEN rn <= 20000 THEN rn ELSE rn + 20000 END) AS in_order
  FROM (SELECT (key->>'id')::int AS k, row_number() OVER (ORDER BY id) AS rn
          FROM mfgsync.events WHERE message_type = 'Bulk') e;
COMMIT;
RESET work_mem;
SELECT count(*) FROM take_events();

DROP TABLE po, chain, line, orders, wiped, bulk, bulk_request;
DROP FUNCTION po_mark, po_replace, po_mark_all, chain_next, orders_note,
    po_try, po_fail, po_wipe, po_reload, bulk_fill;
