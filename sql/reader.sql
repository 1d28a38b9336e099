--
-- reader: consumers read the outbox in commit order (concurrency is covered
-- by test/specs/commit_order.spec)
--
CREATE TABLE machine (machine_code text PRIMARY KEY, status text);
SELECT mfgsync.track('machine', 'Equipment');
INSERT INTO machine VALUES ('M-0', 'idle');       -- before registration

SELECT mfgsync.register_consumer('erp');
SELECT mfgsync.register_consumer('erp');          -- already registered
SELECT mfgsync.register_consumer('');

INSERT INTO machine VALUES ('M-1', 'idle');
UPDATE machine SET status = 'running' WHERE machine_code = 'M-1';
SELECT action, key, data FROM mfgsync.read_events('erp');
-- nothing new
SELECT count(*) FROM mfgsync.read_events('erp');

-- a read that rolls back is read again
INSERT INTO machine VALUES ('M-2', 'idle');
BEGIN;
SELECT action, key FROM mfgsync.read_events('erp');
ROLLBACK;
SELECT action, key FROM mfgsync.read_events('erp');

-- a reader's own transaction: what it writes after reading is read once it
-- has committed, not lost
BEGIN;
SELECT count(*) FROM mfgsync.read_events('erp');
INSERT INTO machine VALUES ('M-3', 'idle');
COMMIT;
SELECT action, key FROM mfgsync.read_events('erp');
-- ... and what it wrote before reading, too
BEGIN;
INSERT INTO machine VALUES ('M-4', 'idle');
SELECT count(*) FROM mfgsync.read_events('erp');
COMMIT;
SELECT action, key FROM mfgsync.read_events('erp');
-- the transaction's first event is in a subtransaction that rolls back:
-- its other events are found all the same.  Only xact_first events are in
-- the txid index: the first of a transaction, and the first after each
-- change of subtransaction (see mfgsync.outbox)
BEGIN;
SAVEPOINT s;
INSERT INTO machine VALUES ('M-6', 'idle');
ROLLBACK TO SAVEPOINT s;
INSERT INTO machine VALUES ('M-7', 'idle');
INSERT INTO machine VALUES ('M-8', 'idle');
SAVEPOINT t;
INSERT INTO machine VALUES ('M-9', 'idle');
RELEASE SAVEPOINT t;
UPDATE machine SET status = 'running' WHERE machine_code = 'M-7';
COMMIT;
SELECT action, key FROM mfgsync.read_events('erp');
SELECT o.action, o.key->>'machine_code' AS machine, o.xact_first
  FROM mfgsync.outbox o WHERE o.key->>'machine_code' IN ('M-6', 'M-7', 'M-8', 'M-9')
 ORDER BY o.id;
-- a consumer registered in a transaction that also writes reads that write
BEGIN;
SELECT mfgsync.register_consumer('late');
INSERT INTO machine VALUES ('M-5', 'idle');
COMMIT;
SELECT action, key FROM mfgsync.read_events('late');
SELECT mfgsync.unregister_consumer('late');

-- the consumer's position is a snapshot
SELECT name, pg_typeof(snapshot), last_read_at IS NOT NULL AS has_read
  FROM mfgsync.consumer;

-- a position restored from another cluster is refused, not silently wrong
SELECT mfgsync.register_consumer('restored');
UPDATE mfgsync.consumer SET snapshot = '4000000000:4000000000:'
 WHERE name = 'restored';
SELECT count(*) FROM mfgsync.read_events('restored');
SELECT mfgsync.unregister_consumer('restored');

SELECT mfgsync.read_events('nobody');
SELECT mfgsync.unregister_consumer('erp');
SELECT mfgsync.unregister_consumer('erp');
DROP TABLE machine;
SELECT count(*) FROM take_events();
