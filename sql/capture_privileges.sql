--
-- capture_privileges: writers of a tracked table need no privilege on the
-- outbox and cannot read or alter it
--
CREATE ROLE mfg_owner;
CREATE ROLE mfg_writer;
GRANT CREATE, USAGE ON SCHEMA public TO mfg_owner;
-- even with USAGE on the schema, the writer gets no access to its objects
GRANT USAGE ON SCHEMA mfgsync TO mfg_writer;

SET ROLE mfg_owner;
CREATE TABLE work_order (order_code text PRIMARY KEY, status text);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON work_order TO mfg_writer;
RESET ROLE;
SELECT mfgsync.track('work_order', 'WorkOrder');

SET ROLE mfg_writer;
INSERT INTO work_order VALUES ('WO-1', 'new');
UPDATE work_order SET status = 'released';
DELETE FROM work_order;
TRUNCATE work_order;
-- the outbox, its views and its functions are out of reach
SELECT count(*) FROM mfgsync.events;
SELECT count(*) FROM mfgsync.outbox;
INSERT INTO mfgsync.outbox VALUES (0, '1', 'X', 'Add', NULL, NULL, NULL, now());
UPDATE mfgsync.outbox SET data = NULL;
DELETE FROM mfgsync.outbox;
TRUNCATE mfgsync.outbox;
SELECT nextval('mfgsync.event_id_seq');
SELECT count(*) FROM mfgsync.tracked_tables;
SELECT mfgsync.track('work_order', 'Hijack');
SELECT mfgsync.untrack('work_order');
SELECT mfgsync.read_events('x');
-- the writer cannot bypass capture by disabling it
ALTER TABLE work_order DISABLE TRIGGER mfgsync_capture_update;
DROP TRIGGER mfgsync_capture_update ON work_order;
RESET ROLE;

-- the writer's three changes were captured
SELECT action, message_type, key, data, old_data FROM take_events();

-- the table owner (not a superuser) can still alter and drop its table;
-- the extension's event triggers keep mfgsync.tracked consistent
SET ROLE mfg_owner;
ALTER TABLE work_order RENAME COLUMN status TO state;
ALTER TABLE work_order ADD COLUMN due date;
DROP TABLE work_order;
RESET ROLE;
SELECT count(*) FROM mfgsync.tracked;

REVOKE USAGE ON SCHEMA mfgsync FROM mfg_writer;
REVOKE CREATE, USAGE ON SCHEMA public FROM mfg_owner;
DROP ROLE mfg_writer;
DROP ROLE mfg_owner;
