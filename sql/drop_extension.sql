--
-- drop_extension: DROP EXTENSION removes every trigger it made, and only
-- those; the staging tables keep their rows and stay writable
--
CREATE TABLE line_a (id int PRIMARY KEY, v text);
CREATE TABLE line_b (id int PRIMARY KEY, v text);
CREATE FUNCTION own_trigger() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER own_trigger BEFORE INSERT ON line_a
    FOR EACH ROW EXECUTE FUNCTION own_trigger();
SELECT mfgsync.track('line_a', 'LineA');
SELECT mfgsync.track('line_b', 'LineB');
INSERT INTO line_a VALUES (1, 'x');
SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'mfgsync%';

-- the capture trigger follows index changes on the outbox within a session
-- (it keeps the outbox's index list per backend): an index created after
-- this session wrote events is filled from the next statement on, and an
-- expression index is refused until it is dropped
INSERT INTO line_a VALUES (10, 'before the index');
CREATE INDEX outbox_action_idx ON mfgsync.outbox (action);
INSERT INTO line_a VALUES (11, 'after the index');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT key FROM mfgsync.outbox WHERE action = 'Add';
SELECT key FROM mfgsync.outbox WHERE action = 'Add' ORDER BY id;
RESET enable_seqscan;
RESET enable_bitmapscan;
CREATE INDEX outbox_lower_idx ON mfgsync.outbox (lower(action));
INSERT INTO line_a VALUES (12, 'refused');
DROP INDEX mfgsync.outbox_lower_idx;
-- a partial index is filled only when its predicate is one boolean column
CREATE INDEX outbox_add_idx ON mfgsync.outbox (id) WHERE action = 'Add';
INSERT INTO line_a VALUES (12, 'refused');
DROP INDEX mfgsync.outbox_add_idx;
-- only B-tree indexes: other access methods keep per-statement state in the
-- IndexInfo that the capture trigger keeps across statements
CREATE INDEX outbox_created_brin ON mfgsync.outbox USING brin (created_at);
INSERT INTO line_a VALUES (12, 'refused');
DROP INDEX mfgsync.outbox_created_brin;
CREATE INDEX outbox_id_hash ON mfgsync.outbox USING hash (id);
INSERT INTO line_a VALUES (12, 'refused');
DROP INDEX mfgsync.outbox_id_hash;
INSERT INTO line_a VALUES (12, 'written');
SELECT count(*) FROM mfgsync.outbox WHERE key->>'id' = '12';
DROP INDEX mfgsync.outbox_action_idx;

DROP EXTENSION mfgsync;

SELECT tgrelid::regclass, tgname FROM pg_trigger
 WHERE tgrelid IN ('line_a'::regclass, 'line_b'::regclass) ORDER BY 1, 2;
-- the schema named in the control file stays, empty, as PostgreSQL leaves it
SELECT count(*) AS objects_left FROM pg_class
 WHERE relnamespace = 'mfgsync'::regnamespace;
SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'mfgsync%';
INSERT INTO line_a VALUES (2, 'y');
TRUNCATE line_b;
SELECT * FROM line_a ORDER BY id;

-- and it can be created again
CREATE EXTENSION mfgsync;
SELECT count(*) FROM mfgsync.tracked;
-- and this session writes to the new outbox, not to the dropped one
SELECT mfgsync.track('line_b', 'LineB');
INSERT INTO line_b VALUES (1, 'new outbox');
SELECT message_type, action, key FROM mfgsync.outbox;
-- event ids are drawn in blocks kept in shared memory per database: the new
-- extension's events number from its own sequence (1), not from the block
-- of the dropped one's
SELECT id FROM mfgsync.outbox;
-- ids must grow in the order events are written, across sessions: a
-- sequence that would let a backend set values aside is refused
ALTER SEQUENCE mfgsync.event_id_seq CACHE 10;
INSERT INTO line_b VALUES (2, 'refused');
ALTER SEQUENCE mfgsync.event_id_seq CACHE 1;
INSERT INTO line_b VALUES (2, 'written');
SELECT id, key FROM mfgsync.outbox ORDER BY id;
-- a block is as long as the increment the senders count on: a smaller one
-- (whose next value would fall inside the block in use) is refused
ALTER SEQUENCE mfgsync.event_id_seq INCREMENT BY 100;
INSERT INTO line_b VALUES (3, 'refused');
ALTER SEQUENCE mfgsync.event_id_seq INCREMENT BY 1000;
-- and a sequence set back below ids handed out is refused, not reused: of
-- the block 1..1000, ids 1 and 2 are used; 999 more events need the next
-- block, which would start at 1 again
SELECT setval('mfgsync.event_id_seq', 1, false);
INSERT INTO line_b SELECT g, 'refused' FROM generate_series(3, 1001) g;
SELECT setval('mfgsync.event_id_seq', 1000);
INSERT INTO line_b SELECT g, 'written' FROM generate_series(3, 1001) g;
SELECT min(id), max(id), count(*) FROM mfgsync.outbox WHERE id > 2;
DROP TABLE line_a, line_b;
DROP FUNCTION own_trigger();
