/* sql/install/00_core.sql: the start of mfgsync--0.1.sql (see Makefile) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION mfgsync" to load this file. \quit

/*
 * The outbox.  The capture trigger (src/capture.c, src/outbox.c) inserts
 * here in the transaction that changed the tracked row.  key, data and
 * old_data are stored as json text exactly as rendered; mfgsync.events
 * shows them as jsonb.  txid is the writing transaction's top-level
 * transaction id (the xid8 value, stored as bigint): readers use it with
 * snapshots to read in commit order (read_events, src/sender.c).
 *
 * Both indexes are B-trees.  Senders read a window of transactions by txid
 * and walk it in id ranges; a BRIN index cannot serve that, because the
 * ranges it has not summarized yet (all recent events) are always returned
 * whole, so every claim would scan every recent event (doc/benchmarks.md).
 * id needs no unique index: the sequence hands out each value once, and
 * nothing else writes here (PgQ's event tables have no key either).
 *
 * The txid index holds only the events marked xact_first: the first event
 * a transaction wrote, and the first after each change of subtransaction
 * (src/outbox.c).  Every committed event has a committed xact_first event
 * of its transaction at or below its id, so "the smallest id of these
 * transactions' events" is found among a few index entries per
 * transaction, and from there the id index leads on; a bulk statement
 * pays one txid index entry, not one per row.
 */
-- Hands out blocks of event ids, CACHE 1 required: see "Event ids" in
-- src/outbox.c.  Ids within a block are consecutive.
CREATE SEQUENCE mfgsync.event_id_seq INCREMENT BY 1000 CACHE 1;

CREATE TABLE mfgsync.outbox (
    id           bigint      NOT NULL,
    txid         bigint      NOT NULL,
    message_type text        NOT NULL,
    action       text        NOT NULL,
    key          json,
    data         json,
    old_data     json,
    created_at   timestamptz NOT NULL,
    xact_first   boolean     NOT NULL
);
CREATE INDEX outbox_id_idx ON mfgsync.outbox (id);
CREATE INDEX outbox_txid_idx ON mfgsync.outbox (txid) WHERE xact_first;
COMMENT ON TABLE mfgsync.outbox IS
    'Change events written by the capture trigger in the changing transaction';

/* What is tracked; the capture triggers carry the same mapping as arguments. */
CREATE TABLE mfgsync.tracked (
    relation       regclass    PRIMARY KEY,
    message_type   text        NOT NULL,
    key_columns    text[]      NOT NULL,
    columns        jsonb,      -- NULL: every column under its own name
    truncate_event boolean     NOT NULL DEFAULT false,
    tracked_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mfgsync.tracked IS
    'Tables tracked by mfgsync.track() and their mapping';

/* Readers of the outbox and the snapshot up to which each has read. */
CREATE TABLE mfgsync.consumer (
    name          text        PRIMARY KEY,
    snapshot      pg_snapshot NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_read_at  timestamptz
);
COMMENT ON TABLE mfgsync.consumer IS
    'Outbox readers: events of transactions visible in snapshot have been read';

SELECT pg_catalog.pg_extension_config_dump('mfgsync.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.consumer', '');

CREATE VIEW mfgsync.events AS
SELECT o.id, o.message_type, o.action,
       o.key::jsonb AS key, o.data::jsonb AS data,
       o.old_data::jsonb AS old_data, o.created_at,
       o.txid::text::xid8 AS txid
  FROM mfgsync.outbox o;
COMMENT ON VIEW mfgsync.events IS
    'The outbox as admins see it, one row per change event';

CREATE VIEW mfgsync.tracked_tables AS
SELECT t.relation, t.message_type, t.key_columns,
       coalesce(t.columns,
                (SELECT pg_catalog.jsonb_object_agg(a.attname, a.attname
                                                    ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = t.relation
                    AND a.attnum > 0 AND NOT a.attisdropped)) AS columns,
       t.truncate_event, t.tracked_at
  FROM mfgsync.tracked t;
COMMENT ON VIEW mfgsync.tracked_tables IS
    'Tracked tables with their message type, key and column mapping';

/* The capture trigger function; see src/capture.c. */
CREATE FUNCTION mfgsync.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'mfgsync_capture'
LANGUAGE C;
COMMENT ON FUNCTION mfgsync.capture() IS
    'Capture trigger installed by mfgsync.track(); not to be used directly';

CREATE FUNCTION mfgsync.record_trigger_dependencies(relation regclass)
RETURNS void
AS 'MODULE_PATHNAME', 'mfgsync_record_trigger_dependencies'
LANGUAGE C STRICT;
COMMENT ON FUNCTION mfgsync.record_trigger_dependencies(regclass) IS
    'Makes the capture triggers on a relation part of what DROP EXTENSION removes';

CREATE FUNCTION mfgsync.drop_capture_triggers(relation regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trigger name;
BEGIN
    FOR trigger IN
        SELECT t.tgname FROM pg_trigger t
         WHERE t.tgrelid = relation
           AND t.tgfoid = 'mfgsync.capture()'::regprocedure
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger, relation);
    END LOOP;
END
$$;
COMMENT ON FUNCTION mfgsync.drop_capture_triggers(regclass) IS
    'Drops the capture triggers of a relation (used by track and untrack)';

CREATE FUNCTION mfgsync.track(relation regclass,
                              message_type text,
                              key_columns text[] DEFAULT NULL,
                              columns jsonb DEFAULT NULL,
                              truncate_event boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel       pg_class%ROWTYPE;
    keys      text[] := key_columns;
    mapped    text[] := '{}';   -- (column, domain name) pairs in column order
    domains   text[] := '{}';
    keynames  text[] := '{}';
    col       text;
    dom       text;
    other     text;
    args      text;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'relation must not be null';
    END IF;
    SELECT * INTO rel FROM pg_class c WHERE c.oid = relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('relation with OID %s does not exist', relation::oid),
            HINT = 'Pass the name of an existing table.';
    END IF;

    /* only ordinary, permanent tables outside partitioning and inheritance */
    IF rel.relkind IN ('v', 'm') THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('cannot track %s "%s"',
                             CASE rel.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END,
                             relation),
            DETAIL = 'mfgsync captures changes with triggers on tables; a view has no rows of its own.',
            HINT = 'Track the tables the view reads from.';
    ELSIF rel.relkind = 'f' THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('cannot track foreign table "%s"', relation),
            DETAIL = 'Its rows change on the remote server, where no trigger of this database fires.',
            HINT = 'Copy it into a staging table with a pull job and track the staging table.';
    ELSIF rel.relkind = 'p' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('cannot track partitioned table "%s"', relation),
            DETAIL = 'Rows written to a partition directly would bypass the capture triggers of the partitioned table.',
            HINT = 'Track a table that is not partitioned.';
    ELSIF rel.relkind <> 'r' THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('"%s" is not a table', relation),
            HINT = 'mfgsync.track() takes an ordinary table.';
    ELSIF rel.relispartition THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('cannot track partition "%s"', relation),
            DETAIL = 'Rows written through the partitioned table would bypass the capture triggers of the partition.',
            HINT = 'Track a table that is not partitioned.';
    ELSIF EXISTS (SELECT 1 FROM pg_inherits i
                   WHERE i.inhrelid = relation OR i.inhparent = relation) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('cannot track table "%s" because it takes part in inheritance', relation),
            DETAIL = 'Rows changed through an inheritance parent would bypass the capture triggers of the child.',
            HINT = 'Track a table without inheritance parents or children.';
    ELSIF rel.relpersistence = 't' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('cannot track temporary table "%s"', relation),
            DETAIL = 'A temporary table is private to its session and vanishes with it, while its events would outlive it.',
            HINT = 'Track a permanent staging table.';
    ELSIF rel.relpersistence = 'u' THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('cannot track unlogged table "%s"', relation),
            DETAIL = 'A crash empties an unlogged table but not the outbox, so receivers would keep rows the table lost.',
            HINT = format('Make it logged first: ALTER TABLE %s SET LOGGED.', relation);
    END IF;

    /* message type: a name receivers can route on */
    IF message_type IS NULL OR message_type = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'message type must not be empty',
            HINT = 'Name the kind of record, for example ''ProductionOrder''.';
    ELSIF message_type !~ '^[A-Za-z][A-Za-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid message type "%s"', message_type),
            DETAIL = 'A message type starts with a letter, has at most 63 characters, and contains only letters, digits, "_", "." and "-".',
            HINT = 'Name the kind of record, for example ''ProductionOrder''.';
    END IF;

    /* key: the given columns, or the primary key */
    IF keys IS NULL THEN
        SELECT array_agg(a.attname::text ORDER BY k.ord) INTO keys
          FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = relation AND i.indisprimary;
        IF keys IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('relation "%s" has no primary key', relation),
                DETAIL = 'Every event names the row it is about by its key.',
                HINT = 'Pass key_columns, or add a primary key.';
        END IF;
    ELSIF cardinality(keys) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'key_columns must not be empty',
            HINT = 'Pass NULL to use the primary key.';
    END IF;
    FOREACH col IN ARRAY keys LOOP
        IF col IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
                MESSAGE = 'key_columns must not contain null',
                HINT = 'List column names, or pass NULL to use the primary key.';
        ELSIF NOT EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = relation AND a.attname = col
                             AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('column "%s" of relation "%s" does not exist', col, relation),
                HINT = 'key_columns lists column names of the tracked table.';
        ELSIF col = ANY (keynames) THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                MESSAGE = format('column "%s" appears more than once in key_columns', col),
                HINT = 'Name each key column once.';
        END IF;
        keynames := keynames || col;
    END LOOP;

    /* mapping: column -> domain name, or every column under its own name */
    IF columns IS NOT NULL THEN
        IF jsonb_typeof(columns) <> 'object' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'columns must be a JSON object',
                DETAIL = 'It maps column names to domain names, as in {"order_code": "ProductionRequestID"}.',
                HINT = 'Pass NULL to capture every column under its own name.';
        ELSIF columns = '{}' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'columns must map at least one column',
                HINT = 'Pass NULL to capture every column under its own name.';
        END IF;
        FOR col, dom IN
            SELECT m.key, m.value #>> '{}'
              FROM jsonb_each(columns) m
                   LEFT JOIN pg_attribute a ON a.attrelid = relation AND a.attname = m.key
                                           AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum NULLS FIRST
        LOOP
            IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = relation AND a.attname = col
                              AND a.attnum > 0 AND NOT a.attisdropped) THEN
                RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                    MESSAGE = format('column "%s" of relation "%s" does not exist', col, relation),
                    HINT = 'The keys of columns are column names of the tracked table.';
            ELSIF jsonb_typeof(columns -> col) <> 'string' OR dom = '' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('domain name of column "%s" must be a non-empty string', col),
                    HINT = 'Map each column to the name receivers know it by, as in {"order_code": "ProductionRequestID"}.';
            ELSIF dom = ANY (domains) THEN
                SELECT m.key INTO other FROM jsonb_each_text(columns) m
                 WHERE m.value = dom AND m.key <> col LIMIT 1;
                RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                    MESSAGE = format('domain name "%s" is used for more than one column', dom),
                    DETAIL = format('Columns "%s" and "%s" both map to it.', other, col),
                    HINT = 'Give each column a domain name of its own.';
            END IF;
            domains := domains || dom;
            mapped := mapped || ARRAY[col, dom];
        END LOOP;
        /* key columns appear under their domain name, or their own */
        SELECT array_agg(coalesce(columns ->> k, k)) INTO keynames
          FROM unnest(keys) k;
        IF (SELECT count(DISTINCT k) FROM unnest(keynames) k) < cardinality(keynames) THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                MESSAGE = 'key columns map to the same domain name',
                DETAIL = format('The key would be {%s}.', array_to_string(keynames, ', ')),
                HINT = 'Give each key column a domain name of its own.';
        END IF;
    END IF;

    /* trigger arguments; layout documented in src/capture.c */
    SELECT string_agg(quote_literal(a), ', ') INTO args
      FROM unnest(ARRAY[message_type,
                        CASE WHEN truncate_event THEN 'event' ELSE 'error' END,
                        cardinality(keys)::text]
                  || keys
                  || CASE WHEN columns IS NULL THEN ARRAY['*'] ELSE mapped END) a;

    PERFORM mfgsync.drop_capture_triggers(relation);
    EXECUTE format('CREATE TRIGGER mfgsync_capture_insert AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS mfgsync_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture(%s)', relation, args);
    EXECUTE format('CREATE TRIGGER mfgsync_capture_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS mfgsync_old NEW TABLE AS mfgsync_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture(%s)', relation, args);
    EXECUTE format('CREATE TRIGGER mfgsync_capture_delete AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS mfgsync_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture(%s)', relation, args);
    EXECUTE format('CREATE TRIGGER mfgsync_capture_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION mfgsync.capture(%s)', relation, args);
    PERFORM mfgsync.record_trigger_dependencies(relation);

    INSERT INTO mfgsync.tracked AS t (relation, message_type, key_columns, columns, truncate_event)
    VALUES (relation, message_type, keys, columns, truncate_event)
    ON CONFLICT ON CONSTRAINT tracked_pkey DO UPDATE
       SET message_type = EXCLUDED.message_type,
           key_columns = EXCLUDED.key_columns,
           columns = EXCLUDED.columns,
           truncate_event = EXCLUDED.truncate_event,
           tracked_at = now();
END
$$;
COMMENT ON FUNCTION mfgsync.track(regclass, text, text[], jsonb, boolean) IS
    'Start capturing changes of a table as events, or change its mapping';

CREATE FUNCTION mfgsync.untrack(relation regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfgsync.tracked t WHERE t.relation = untrack.relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('relation "%s" is not tracked', relation),
            HINT = 'mfgsync.tracked_tables lists the tracked tables.';
    END IF;
    PERFORM mfgsync.drop_capture_triggers(relation);
END
$$;
COMMENT ON FUNCTION mfgsync.untrack(regclass) IS
    'Stop capturing changes of a table; events already captured stay';

/*
 * Keep mfgsync.tracked consistent with the catalog: forget dropped tables,
 * and refuse ALTER TABLE that drops or renames a tracked column.  They run
 * as the extension owner, since the role dropping or altering its table
 * has no privileges on mfgsync.tracked.
 */
CREATE FUNCTION mfgsync.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfgsync.tracked t
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
       AND t.relation = d.objid;
END
$$;

CREATE FUNCTION mfgsync.on_ddl_command_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT t.relation, c.col
          FROM mfgsync.tracked t
               CROSS JOIN LATERAL (SELECT unnest(t.key_columns)
                                   UNION
                                   SELECT jsonb_object_keys(coalesce(t.columns, '{}'))) c(col)
         WHERE t.relation IN (SELECT d.objid FROM pg_event_trigger_ddl_commands() d
                               WHERE d.classid = 'pg_class'::regclass)
           AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = t.relation AND a.attname = c.col
                              AND a.attnum > 0 AND NOT a.attisdropped)
    LOOP
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('column "%s" of relation "%s" is tracked by mfgsync', r.col, r.relation),
            DETAIL = 'Its events would lose the column silently.',
            HINT = 'Call mfgsync.track() again with a mapping without it, or mfgsync.untrack() first.';
    END LOOP;

    /* what track() refuses must not happen to a tracked table later */
    FOR r IN
        SELECT t.relation, c.relispartition, c.relpersistence
          FROM mfgsync.tracked t JOIN pg_class c ON c.oid = t.relation
         WHERE c.relispartition OR c.relpersistence <> 'p'
            OR EXISTS (SELECT 1 FROM pg_inherits i
                        WHERE i.inhrelid = t.relation OR i.inhparent = t.relation)
    LOOP
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = CASE
                WHEN r.relispartition THEN
                    format('relation "%s" is tracked by mfgsync and cannot become a partition', r.relation)
                WHEN r.relpersistence <> 'p' THEN
                    format('relation "%s" is tracked by mfgsync and cannot become unlogged', r.relation)
                ELSE
                    format('relation "%s" is tracked by mfgsync and cannot take part in inheritance', r.relation)
                END,
            DETAIL = CASE
                WHEN r.relpersistence <> 'p' THEN
                    'A crash empties an unlogged table but not the outbox, so receivers would keep rows the table lost.'
                ELSE
                    'Rows written through the parent would bypass the capture triggers of the tracked table.'
                END,
            HINT = 'Call mfgsync.untrack() first.';
    END LOOP;
END
$$;

CREATE EVENT TRIGGER mfgsync_sql_drop ON sql_drop
    EXECUTE FUNCTION mfgsync.on_sql_drop();
CREATE EVENT TRIGGER mfgsync_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
    EXECUTE FUNCTION mfgsync.on_ddl_command_end();

/*
 * Reading the outbox in commit order.
 *
 * A consumer remembers the snapshot up to which it has read.  Each call
 * returns the events of the transactions that are visible now but were not
 * visible in that snapshot, and moves the snapshot forward, in the caller's
 * transaction (so a rolled-back read is read again).  Because a transaction
 * either is or is not visible in a snapshot, an event can never be skipped,
 * however its id compares with those of other transactions: a transaction
 * that drew id 100 and commits after the one that drew id 101 is returned
 * by a later call.  Within one call events come in id order, which for any
 * one key is the order of the commits that wrote them (see src/outbox.c).
 */
CREATE FUNCTION mfgsync.snapshot_with_running(snap pg_snapshot, xid xid8)
RETURNS pg_snapshot
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    /* pg_current_snapshot() leaves the caller's own transaction out of the
     * running ones; a consumer's stored snapshot must count it as running,
     * or the events it writes after reading would count as read */
    SELECT CASE
        WHEN NOT pg_visible_in_snapshot(xid, snap) THEN snap
        ELSE format('%s:%s:%s',
                    least(pg_snapshot_xmin(snap)::text::bigint, xid::text::bigint),
                    greatest(pg_snapshot_xmax(snap)::text::bigint, xid::text::bigint + 1),
                    (SELECT string_agg(x::text, ',' ORDER BY x)
                       FROM (SELECT pg_snapshot_xip(snap)::text::bigint
                             UNION
                             SELECT xid::text::bigint) AS running(x)))::pg_snapshot
    END
$$;
COMMENT ON FUNCTION mfgsync.snapshot_with_running(pg_snapshot, xid8) IS
    'The snapshot with transaction xid counted as still running';

CREATE FUNCTION mfgsync.register_consumer(name text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'consumer name must not be empty';
    END IF;
    INSERT INTO mfgsync.consumer (name, snapshot)
    VALUES (register_consumer.name,
            mfgsync.snapshot_with_running(pg_current_snapshot(), pg_current_xact_id()))
    ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION mfgsync.register_consumer(text) IS
    'Start a reader of the outbox at the events not yet committed';

CREATE FUNCTION mfgsync.unregister_consumer(name text)
RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH d AS (DELETE FROM mfgsync.consumer c
                WHERE c.name = unregister_consumer.name RETURNING 1)
    SELECT count(*) > 0 FROM d;
END;
COMMENT ON FUNCTION mfgsync.unregister_consumer(text) IS
    'Forget a reader of the outbox';

CREATE FUNCTION mfgsync.read_events(consumer text)
RETURNS SETOF mfgsync.events
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev pg_snapshot;
    cur  pg_snapshot;
    own  xid8;
    first_id bigint;
BEGIN
    /* one reader per consumer at a time; under READ COMMITTED this returns
     * the position the previous reader committed */
    SELECT c.snapshot INTO prev FROM mfgsync.consumer c
     WHERE c.name = read_events.consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('consumer "%s" does not exist', consumer),
            HINT = 'Register it with mfgsync.register_consumer().';
    END IF;
    /* taken after the lock; the scan below sees at least as much.  This
     * transaction's own events are read after it commits. */
    cur := pg_current_snapshot();
    own := pg_current_xact_id();
    /* a position no transaction of this cluster has reached was restored
     * from another cluster (pg_dump): reading from it would skip events */
    IF pg_snapshot_xmax(prev) > pg_snapshot_xmax(cur) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('position of consumer "%s" is ahead of this cluster''s transactions', consumer),
            DETAIL = 'It was stored by another cluster and restored into this one.',
            HINT = 'Unregister the consumer and register it again; it then reads the events committed from then on.';
    END IF;
    UPDATE mfgsync.consumer c
       SET snapshot = mfgsync.snapshot_with_running(cur, own),
           last_read_at = now()
     WHERE c.name = read_events.consumer;
    /* the smallest id of those transactions: see mfgsync.outbox */
    SELECT min(o.id) INTO first_id
      FROM mfgsync.outbox o
     WHERE o.xact_first
       AND o.txid >= pg_snapshot_xmin(prev)::text::bigint
       AND o.txid <> own::text::bigint
       AND pg_visible_in_snapshot(o.txid::text::xid8, cur)
       AND NOT pg_visible_in_snapshot(o.txid::text::xid8, prev);
    RETURN QUERY
    SELECT o.id, o.message_type, o.action, o.key::jsonb, o.data::jsonb,
           o.old_data::jsonb, o.created_at, o.txid::text::xid8
      FROM mfgsync.outbox o
     WHERE o.id >= first_id
       AND o.txid <> own::text::bigint
       AND pg_visible_in_snapshot(o.txid::text::xid8, cur)
       AND NOT pg_visible_in_snapshot(o.txid::text::xid8, prev)
     ORDER BY o.id;
END
$$;
COMMENT ON FUNCTION mfgsync.read_events(text) IS
    'Events committed since the consumer''s last read, in commit order';

/* Administrative functions are for superusers (and, later, mfgsync_admin). */
REVOKE ALL ON FUNCTION mfgsync.capture() FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.record_trigger_dependencies(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.drop_capture_triggers(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.track(regclass, text, text[], jsonb, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.untrack(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.snapshot_with_running(pg_snapshot, xid8) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.register_consumer(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.unregister_consumer(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.read_events(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.on_sql_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.on_ddl_command_end() FROM PUBLIC;

/*
 * Delivery: endpoints, subscriptions and the senders' bookkeeping.
 *
 * A sender reads the outbox of each endpoint in windows between two
 * snapshots (like read_events above, and PgQ's ticks): the events of the
 * transactions visible in "high" but not in "low".  Inside a window every
 * event is committed, so the window is walked in id order, which for any
 * one key is commit order.  endpoint_state is updated once per batch; an
 * event costs no write of its own unless it fails (src/sender.c).
 */
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'mfgsync_monitor') THEN
        CREATE ROLE mfgsync_monitor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'mfgsync_admin') THEN
        CREATE ROLE mfgsync_admin NOLOGIN;
    END IF;
END
$$;
GRANT mfgsync_monitor TO mfgsync_admin;

CREATE TABLE mfgsync.endpoint (
    id            integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL UNIQUE,
    url           text        NOT NULL,
    format        text        NOT NULL CHECK (format IN ('webhook', 'b2mml')),
    options       jsonb       NOT NULL DEFAULT '{}',  -- validated, without secrets
    owner         regrole     NOT NULL,   -- filters are evaluated as this role
    paused        boolean     NOT NULL DEFAULT false,
    paused_reason text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mfgsync.endpoint IS
    'Receivers of events; secrets are kept apart in mfgsync.endpoint_secret';

/* Signing secrets: readable by the admin role and the senders only. */
CREATE TABLE mfgsync.endpoint_secret (
    endpoint_id     integer PRIMARY KEY REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    secret          text    NOT NULL,
    previous_secret text    -- still signed with during a rotation
);

CREATE TABLE mfgsync.subscription (
    endpoint_id  integer     NOT NULL REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    message_type text        NOT NULL,
    filter       text,       -- boolean SQL expression over mfgsync.events
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, message_type)
);
COMMENT ON TABLE mfgsync.subscription IS
    'Which message types go to which endpoint, optionally filtered';

/* Written by the senders only. */
/*
 * One row per shard: an endpoint with option "workers" = n splits its
 * events into n shards by a hash of the ordering key (message type and
 * key, mfgsync.shard_of), each with its own position and sender.  The
 * counters of all shards add up to the endpoint's.
 */
CREATE TABLE mfgsync.endpoint_state (
    endpoint_id     integer     NOT NULL REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    shard           integer     NOT NULL DEFAULT 0, -- 0 .. workers - 1
    generation      integer     NOT NULL DEFAULT 0, -- bumped when the shards are re-cut
    low             pg_snapshot NOT NULL, -- events visible here are settled
    high            pg_snapshot,          -- the window being walked, if any
    next_id         bigint      NOT NULL DEFAULT 0, -- window events below are settled
    last_id         bigint      NOT NULL DEFAULT 0, -- no window event is above
    delivered       bigint      NOT NULL DEFAULT 0,
    failed          bigint      NOT NULL DEFAULT 0, -- failed attempts
    dead            bigint      NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_status     integer,
    last_error      text,
    last_error_at   timestamptz,
    PRIMARY KEY (endpoint_id, shard)
);

/*
 * Events that failed and wait for another attempt, and the later events of
 * the same key that wait behind them (attempts = 0): the per-key order.
 */
CREATE TABLE mfgsync.retry (
    endpoint_id     integer     NOT NULL REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    event_id        bigint      NOT NULL,
    ordering_key    text        NOT NULL, -- message type and key
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX retry_key_idx ON mfgsync.retry (endpoint_id, ordering_key, event_id);

CREATE TABLE mfgsync.dead_letter (
    endpoint_id integer     NOT NULL REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    event_id    bigint      NOT NULL,
    attempts    integer     NOT NULL,
    last_status integer,
    last_error  text,
    reason      text        NOT NULL CHECK (reason IN ('exhausted', 'rejected', 'unrenderable')),
    dead_at     timestamptz NOT NULL DEFAULT now(),
    description text,       -- a B2MML receiver's ConfirmBOD BOD/Description (rejected)
    note        text,       -- and its BOD/Note
    PRIMARY KEY (endpoint_id, event_id)
);

/* Every failed attempt; retired with the events. */
CREATE TABLE mfgsync.failure (
    endpoint_id integer     NOT NULL REFERENCES mfgsync.endpoint ON DELETE CASCADE,
    event_id    bigint      NOT NULL,
    attempt     integer     NOT NULL,
    status      integer,    -- HTTP status, NULL for a transport error
    error       text        NOT NULL,
    latency_ms  real,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failure_event_idx ON mfgsync.failure (endpoint_id, event_id);

SELECT pg_catalog.pg_extension_config_dump('mfgsync.endpoint', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.endpoint_secret', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.subscription', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.endpoint_state', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.retry', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.dead_letter', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.failure', '');

/*
 * endpoint_options
 *		Check endpoint options and return them with their defaults filled
 *		in; the senders read the result (src/sender.c).
 */
CREATE FUNCTION mfgsync.endpoint_options(format text, options jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    /* name => [type, default, min, max] */
    known constant jsonb := jsonb_build_object(
        'secret',                jsonb_build_array('secret', NULL, NULL, NULL),
        'previous_secret',       jsonb_build_array('secret', NULL, NULL, NULL),
        'headers',               jsonb_build_array('object', '{}'::jsonb, NULL, NULL),
        'timeout_ms',            jsonb_build_array('integer', 10000, 1, 3600000),
        'connect_timeout_ms',    jsonb_build_array('integer', 5000, 1, 600000),
        'concurrency',           jsonb_build_array('integer', 16, 1, 256),
        'workers',               jsonb_build_array('integer', 1, 1, 16),
        'batch_size',            jsonb_build_array('integer', NULL, 1, 10000),
        'max_response_bytes',    jsonb_build_array('integer', 65536, 0, 104857600),
        'max_attempts',          jsonb_build_array('integer', 10, 1, 1000),
        'client_error_attempts', jsonb_build_array('integer', 3, 1, 1000),
        'retry_initial_ms',      jsonb_build_array('integer', 1000, 1, 86400000),
        'retry_max_ms',          jsonb_build_array('integer', 600000, 1, 86400000),
        'follow_redirects',      jsonb_build_array('boolean', false, NULL, NULL),
        'envelope',              jsonb_build_array('enum', 'webhook', 'webhook cloudevents cloudevents-batch', NULL),
        'source',                jsonb_build_array('string', NULL, NULL, NULL),
        'ca_file',               jsonb_build_array('string', NULL, NULL, NULL),
        /* format "b2mml" only (doc/b2mml.md); defaults filled in below */
        'dialect',               jsonb_build_array('enum', NULL, 'xml json-mesa json-edinn', NULL),
        'confirmation_code',     jsonb_build_array('enum', NULL, 'Always OnError Never', NULL),
        'component_id',          jsonb_build_array('string', NULL, NULL, NULL),
        'logical_id',            jsonb_build_array('string', NULL, NULL, NULL),
        'receiver_logical_id',   jsonb_build_array('string', NULL, NULL, NULL),
        'release_id',            jsonb_build_array('string', NULL, NULL, NULL),
        'retry_rejected',        jsonb_build_array('boolean', NULL, NULL, NULL));
    b2mml_only constant text[] := ARRAY['dialect', 'confirmation_code', 'component_id',
                                        'logical_id', 'receiver_logical_id', 'release_id',
                                        'retry_rejected'];
    result jsonb := '{}';
    k text;
    v jsonb;
    spec jsonb;
    n numeric;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'endpoint options must be a JSON object';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(options) LOOP
        spec := known -> k;
        IF spec IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown endpoint option "%s"', k),
                HINT = format('Valid options are: %s.',
                              (SELECT string_agg(o, ', ' ORDER BY o) FROM jsonb_object_keys(known) o));
        END IF;
        CASE spec ->> 0
        WHEN 'integer' THEN
            IF jsonb_typeof(v) <> 'number' OR (v::text)::numeric <> trunc((v::text)::numeric) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" must be an integer', k);
            END IF;
            n := (v::text)::numeric;
            IF n < (spec ->> 2)::numeric OR n > (spec ->> 3)::numeric THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" is out of range: %s', k, v),
                    HINT = format('Valid values are %s to %s.', spec ->> 2, spec ->> 3);
            END IF;
            v := to_jsonb(n::bigint);   -- 1.0 and 1e3 as the senders' ::int reads them
        WHEN 'boolean' THEN
            IF jsonb_typeof(v) <> 'boolean' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" must be true or false', k);
            END IF;
        WHEN 'enum' THEN
            IF jsonb_typeof(v) <> 'string'
               OR NOT (v ->> 0) = ANY (string_to_array(spec ->> 2, ' ')) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('invalid value for endpoint option "%s": %s', k, v),
                    HINT = format('Valid values are: %s.', replace(spec ->> 2, ' ', ', '));
            END IF;
        WHEN 'string' THEN
            IF jsonb_typeof(v) <> 'string' OR v ->> 0 = '' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" must be a non-empty string', k);
            END IF;
            IF k = 'ca_file' AND left(v ->> 0, 1) <> '/' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'endpoint option "ca_file" must be an absolute path';
            END IF;
        WHEN 'secret' THEN
            /* Standard Webhooks: "whsec_" and the base64 of 24 to 64 bytes */
            IF jsonb_typeof(v) <> 'string'
               OR (v ->> 0) !~ '^whsec_[A-Za-z0-9+/]+={0,2}$'
               OR length(v ->> 0) % 4 <> 2     -- decode() fails on a partial quantum
               OR length(decode(substr(v ->> 0, 7), 'base64')) NOT BETWEEN 24 AND 64 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" is not a valid signing secret', k),
                    HINT = 'A secret is "whsec_" followed by the base64 encoding of 24 to 64 random bytes.';
            END IF;
        WHEN 'object' THEN
            IF jsonb_typeof(v) <> 'object' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" must be a JSON object', k);
            END IF;
            PERFORM mfgsync.check_header(h.key, h.value) FROM jsonb_each(v) h;
        END CASE;
        result := result || jsonb_build_object(k, v);
    END LOOP;
    IF (result ? 'previous_secret') AND NOT (result ? 'secret') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'endpoint option "previous_secret" requires "secret"';
    END IF;
    /* defaults for what was not given */
    FOR k, spec IN SELECT * FROM jsonb_each(known) LOOP
        IF NOT result ? k AND spec -> 1 <> 'null' THEN
            result := result || jsonb_build_object(k, spec -> 1);
        END IF;
    END LOOP;
    IF (result ->> 'retry_max_ms')::int < (result ->> 'retry_initial_ms')::int THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'endpoint option "retry_max_ms" must not be less than "retry_initial_ms"';
    END IF;
    IF format = 'b2mml' AND result ->> 'envelope' <> 'webhook' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'endpoint option "envelope" applies to format "webhook" only';
    END IF;
    IF format = 'b2mml' THEN
        result := jsonb_build_object('dialect', 'xml', 'confirmation_code', 'Always',
                                     'release_id', 'B2MML-V0600', 'retry_rejected', false)
                  || result;
    ELSE
        FOREACH k IN ARRAY b2mml_only LOOP
            IF result ? k THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('endpoint option "%s" applies to format "b2mml" only', k);
            END IF;
        END LOOP;
    END IF;
    RETURN result;
END
$$;

CREATE FUNCTION mfgsync.check_header(name text, value jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid HTTP header name "%s"', name);
    END IF;
    IF lower(name) IN ('host', 'content-length', 'content-type', 'transfer-encoding',
                       'connection', 'webhook-id', 'webhook-timestamp', 'webhook-signature') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('header "%s" is set by mfgsync and cannot be configured', name);
    END IF;
    IF jsonb_typeof(value) <> 'string' OR (value ->> 0) ~ '[\r\n\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('value of header "%s" must be a string without control characters', name);
    END IF;
END
$$;

CREATE FUNCTION mfgsync.check_url(url text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF url IS NULL OR url !~* '^https?://' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid endpoint URL "%s"', url),
            DETAIL = 'Only http and https URLs are allowed.';
    END IF;
    IF url !~* '^https?://(\[[0-9a-f:.]+\]|[a-z0-9._~%!$&''()*+,;=-]+)(:[0-9]{1,5})?(/[^\s#]*)?$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid endpoint URL "%s"', url),
            DETAIL = 'Expected http[s]://host[:port][/path], without user information, spaces or fragment.';
    END IF;
END
$$;

/* takes the caller's transaction as still running: see read_events */
CREATE FUNCTION mfgsync.endpoint_start_position()
RETURNS pg_snapshot
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT mfgsync.snapshot_with_running(pg_current_snapshot(), pg_current_xact_id())
$$;

CREATE FUNCTION mfgsync.endpoint_id(name text)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result integer;
BEGIN
    SELECT e.id INTO result FROM mfgsync.endpoint e WHERE e.name = endpoint_id.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('endpoint "%s" does not exist', name);
    END IF;
    RETURN result;
END
$$;

/*
 * shard_of
 *		The shard of an event's ordering key (message type, a space, and the
 *		key's JSON text) among n; the senders' claims use the same
 *		expression.
 */
CREATE FUNCTION mfgsync.shard_of(ordering_key text, n integer)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (pg_catalog.hashtext(ordering_key) & 2147483647) % n;

/*
 * reshard_endpoint
 *		Cut an endpoint's events into n shards.  Every new shard starts at
 *		the position every old shard has passed: the snapshot in which
 *		exactly the transactions visible in all old positions are visible
 *		(oldest xmin, oldest xmax, all transactions running in any).  Events
 *		settled by some shards only are sent again (at-least-once), in id
 *		order; a sender still recording under the old cut fails on the
 *		generation and its batch is sent again too.  Counters move to shard
 *		0.
 */
CREATE FUNCTION mfgsync.reshard_endpoint(ep integer, n integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    merged pg_snapshot;
    old mfgsync.endpoint_state;
BEGIN
    PERFORM FROM mfgsync.endpoint_state s WHERE s.endpoint_id = ep FOR UPDATE;
    SELECT (b.xmin || ':' || b.xmax || ':' ||
            coalesce((SELECT string_agg(x::text, ',' ORDER BY x)
                        FROM (SELECT DISTINCT pg_snapshot_xip(s.low)::text::bigint AS x
                                FROM mfgsync.endpoint_state s
                               WHERE s.endpoint_id = ep) AS xs
                       WHERE x >= b.xmin AND x < b.xmax), ''))::pg_snapshot
      INTO merged
      FROM (SELECT min(pg_snapshot_xmin(s.low)::text::bigint) AS xmin,
                   min(pg_snapshot_xmax(s.low)::text::bigint) AS xmax
              FROM mfgsync.endpoint_state s WHERE s.endpoint_id = ep) AS b;
    SELECT ep, 0, max(s.generation) + 1, merged, NULL, 0, 0,
           sum(s.delivered), sum(s.failed), sum(s.dead), max(s.last_success_at),
           (array_agg(s.last_status ORDER BY s.last_error_at DESC NULLS LAST))[1],
           (array_agg(s.last_error ORDER BY s.last_error_at DESC NULLS LAST))[1],
           max(s.last_error_at)
      INTO old
      FROM mfgsync.endpoint_state s WHERE s.endpoint_id = ep;
    DELETE FROM mfgsync.endpoint_state s WHERE s.endpoint_id = ep;
    INSERT INTO mfgsync.endpoint_state
    SELECT old.endpoint_id, g, old.generation, old.low, NULL, 0, 0,
           CASE WHEN g = 0 THEN old.delivered ELSE 0 END,
           CASE WHEN g = 0 THEN old.failed ELSE 0 END,
           CASE WHEN g = 0 THEN old.dead ELSE 0 END,
           CASE WHEN g = 0 THEN old.last_success_at END,
           CASE WHEN g = 0 THEN old.last_status END,
           CASE WHEN g = 0 THEN old.last_error END,
           CASE WHEN g = 0 THEN old.last_error_at END
      FROM generate_series(0, n - 1) AS g;
END
$$;

/* Senders re-read their configuration when the transaction commits. */
CREATE FUNCTION mfgsync.notify_senders()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'mfgsync_notify_senders';

CREATE FUNCTION mfgsync.create_endpoint(name text, url text,
                                        format text DEFAULT 'webhook',
                                        options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    opts jsonb;
    new_id integer;
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid endpoint name "%s"', name),
            HINT = 'Use 1 to 63 letters, digits, "_", "." or "-".';
    END IF;
    PERFORM mfgsync.check_url(url);
    IF format IS NULL OR format NOT IN ('webhook', 'b2mml') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid endpoint format "%s"', format),
            HINT = 'Valid formats are: webhook, b2mml.';
    END IF;
    opts := mfgsync.endpoint_options(format, options);
    INSERT INTO mfgsync.endpoint (name, url, format, options, owner)
    VALUES (name, url, format, opts - 'secret' - 'previous_secret', session_user::regrole)
    ON CONFLICT DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('endpoint "%s" already exists', name);
    END IF;
    IF opts ? 'secret' THEN
        INSERT INTO mfgsync.endpoint_secret VALUES
            (new_id, opts ->> 'secret', opts ->> 'previous_secret');
    END IF;
    INSERT INTO mfgsync.endpoint_state (endpoint_id, shard, low)
    SELECT new_id, g, mfgsync.endpoint_start_position()
      FROM generate_series(0, (opts ->> 'workers')::int - 1) AS g;
    PERFORM mfgsync.notify_senders();
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION mfgsync.create_endpoint(text, text, text, jsonb) IS
    'Create a receiver of events; it gets the events committed from now on';

CREATE FUNCTION mfgsync.alter_endpoint(name text, options jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep mfgsync.endpoint;
    old jsonb;
    opts jsonb;
BEGIN
    SELECT * INTO ep FROM mfgsync.endpoint e
     WHERE e.id = mfgsync.endpoint_id(alter_endpoint.name) FOR UPDATE;
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'endpoint options must be a JSON object';
    END IF;
    /* "url" may change too; a JSON null removes an option */
    IF options ? 'url' THEN
        PERFORM mfgsync.check_url(options ->> 'url');
        UPDATE mfgsync.endpoint SET url = alter_endpoint.options ->> 'url' WHERE id = ep.id;
        options := options - 'url';
    END IF;
    SELECT ep.options || jsonb_strip_nulls(jsonb_build_object('secret', s.secret,
                                                               'previous_secret', s.previous_secret))
      INTO old
      FROM (SELECT 1) AS one
      LEFT JOIN mfgsync.endpoint_secret s ON s.endpoint_id = ep.id;
    opts := old || options;
    opts := (SELECT coalesce(jsonb_object_agg(k, v), '{}')
               FROM jsonb_each(opts) AS o(k, v) WHERE v <> 'null');
    opts := mfgsync.endpoint_options(ep.format, opts);
    UPDATE mfgsync.endpoint SET options = opts - 'secret' - 'previous_secret'
     WHERE id = ep.id;
    DELETE FROM mfgsync.endpoint_secret WHERE endpoint_id = ep.id;
    IF opts ? 'secret' THEN
        INSERT INTO mfgsync.endpoint_secret VALUES
            (ep.id, opts ->> 'secret', opts ->> 'previous_secret');
    END IF;
    IF (opts ->> 'workers')::int <> coalesce((ep.options ->> 'workers')::int, 1) THEN
        PERFORM mfgsync.reshard_endpoint(ep.id, (opts ->> 'workers')::int);
    END IF;
    PERFORM mfgsync.notify_senders();
END
$$;
COMMENT ON FUNCTION mfgsync.alter_endpoint(text, jsonb) IS
    'Change options (and "url") of an endpoint; a null value removes an option';

CREATE FUNCTION mfgsync.drop_endpoint(name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfgsync.endpoint WHERE id = mfgsync.endpoint_id(drop_endpoint.name);
    PERFORM mfgsync.notify_senders();
END
$$;

CREATE FUNCTION mfgsync.pause_endpoint(name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE mfgsync.endpoint
       SET paused = true, paused_reason = format('paused by %s at %s', session_user, now())
     WHERE id = mfgsync.endpoint_id(pause_endpoint.name);
    PERFORM mfgsync.notify_senders();
END
$$;

CREATE FUNCTION mfgsync.resume_endpoint(name text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE mfgsync.endpoint SET paused = false, paused_reason = NULL
     WHERE id = mfgsync.endpoint_id(resume_endpoint.name);
    PERFORM mfgsync.notify_senders();
END
$$;

CREATE FUNCTION mfgsync.check_filter(filter text)
RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'mfgsync_check_filter';

/*
 * subscribe checks the filter with the caller's privileges (it is not a
 * security definer), then stores the subscription through
 * store_subscription.  The senders evaluate a filter as the endpoint's
 * owner.
 */
CREATE FUNCTION mfgsync.subscribe(endpoint text, message_types text[],
                                  filter text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF filter IS NOT NULL THEN
        BEGIN
            /* one expression, nothing around it (src/sender.c) */
            PERFORM mfgsync.check_filter(filter);
            EXECUTE format('SELECT 1 FROM (SELECT * FROM mfgsync.events LIMIT 0) AS event WHERE (%s)', filter);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid subscription filter: %s', SQLERRM),
                HINT = 'A filter is a boolean SQL expression over the columns of mfgsync.events, e.g. data->>''machine'' = ''M1''.';
        END;
    END IF;
    PERFORM mfgsync.store_subscription(endpoint, message_types, filter);
END
$$;
COMMENT ON FUNCTION mfgsync.subscribe(text, text[], text) IS
    'Send events of these message types (matching the filter) to the endpoint';

CREATE FUNCTION mfgsync.store_subscription(endpoint text, message_types text[],
                                           filter text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep integer := mfgsync.endpoint_id(endpoint);
    owner regrole;
    mt text;
BEGIN
    IF message_types IS NULL OR cardinality(message_types) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'message_types must name at least one message type';
    END IF;
    /* the senders run a filter with the owner's rights: only the owner may set one */
    SELECT e.owner INTO owner FROM mfgsync.endpoint e WHERE e.id = ep;
    IF filter IS NOT NULL AND NOT pg_has_role(session_user, owner, 'MEMBER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('only the owner of endpoint "%s" can set a subscription filter', endpoint),
            DETAIL = format('Filters are evaluated with the privileges of the endpoint''s owner, %s.', owner);
    END IF;
    /* also when called directly: the claim query embeds the filter */
    IF filter IS NOT NULL THEN
        PERFORM mfgsync.check_filter(filter);
    END IF;
    FOREACH mt IN ARRAY message_types LOOP
        IF mt IS NULL OR NOT EXISTS (SELECT 1 FROM mfgsync.tracked t WHERE t.message_type = mt) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('unknown message type "%s"', mt),
                DETAIL = 'No tracked table emits this message type.',
                HINT = 'Track a table with mfgsync.track() first; see mfgsync.tracked_tables.';
        END IF;
    END LOOP;
    INSERT INTO mfgsync.subscription (endpoint_id, message_type, filter)
    SELECT DISTINCT ep, m, filter FROM unnest(message_types) AS m
    ON CONFLICT (endpoint_id, message_type) DO UPDATE SET filter = EXCLUDED.filter;
    PERFORM mfgsync.notify_senders();
END
$$;

CREATE FUNCTION mfgsync.unsubscribe(endpoint text, message_types text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfgsync.subscription s
     WHERE s.endpoint_id = mfgsync.endpoint_id(endpoint)
       AND s.message_type = ANY (message_types);
    PERFORM mfgsync.notify_senders();
END
$$;

CREATE FUNCTION mfgsync.replay(endpoint text, event_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep integer := mfgsync.endpoint_id(endpoint);
    n bigint;
BEGIN
    DELETE FROM mfgsync.dead_letter d WHERE d.endpoint_id = ep AND d.event_id = ANY (event_ids);
    INSERT INTO mfgsync.retry (endpoint_id, event_id, ordering_key)
    SELECT ep, o.id, o.message_type || ' ' || coalesce(o.key::text, '')
      FROM mfgsync.outbox o
     WHERE o.id = ANY (event_ids)
    ON CONFLICT (endpoint_id, event_id) DO UPDATE
       SET attempts = 0, next_attempt_at = now();
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM mfgsync.notify_senders();
    RETURN n;
END
$$;
COMMENT ON FUNCTION mfgsync.replay(text, bigint[]) IS
    'Deliver the given events to the endpoint again; returns how many were found';

CREATE FUNCTION mfgsync.replay(endpoint text, since timestamptz,
                               until timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT mfgsync.replay(endpoint,
                          ARRAY(SELECT o.id FROM mfgsync.outbox o
                                 WHERE o.created_at >= since AND o.created_at < until
                                   AND o.message_type IN
                                       (SELECT s.message_type FROM mfgsync.subscription s
                                         WHERE s.endpoint_id = mfgsync.endpoint_id(endpoint))
                                 ORDER BY o.id));
END;
COMMENT ON FUNCTION mfgsync.replay(text, timestamptz, timestamptz) IS
    'Deliver the endpoint''s events created in [since, until) again';

CREATE FUNCTION mfgsync.replay_key(endpoint text, message_type text, key jsonb,
                                   since timestamptz DEFAULT '-infinity')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM mfgsync.subscription s
                    WHERE s.endpoint_id = mfgsync.endpoint_id(endpoint)
                      AND s.message_type = replay_key.message_type) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('endpoint "%s" is not subscribed to message type "%s"',
                             endpoint, message_type),
            HINT = 'See mfgsync.subscribe().';
    END IF;
    RETURN mfgsync.replay(endpoint,
                          ARRAY(SELECT o.id FROM mfgsync.outbox o
                                 WHERE o.message_type = replay_key.message_type
                                   AND o.key::jsonb = replay_key.key
                                   AND o.created_at >= since
                                 ORDER BY o.id));
END
$$;
COMMENT ON FUNCTION mfgsync.replay_key(text, text, jsonb, timestamptz) IS
    'Deliver the endpoint''s events of one key (created since the given time) again, in order';

/*
 * retire
 *		Delete events that every endpoint and consumer has settled and that
 *		are older than mfgsync.retention, with their failure records.  The
 *		launcher calls it periodically.
 */
CREATE FUNCTION mfgsync.retire()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    /*
     * The horizon is the smallest id of an event (that this statement sees)
     * whose transaction is not visible in some position: every event below
     * it is settled everywhere.  Each position's is found among the
     * xact_first events from its xmin on (see mfgsync.outbox).  Events of
     * transactions still running are not seen, and not deleted.  It must be
     * one statement: with the horizon taken in a statement of its own, a
     * transaction committing before the DELETE's snapshot would be deleted
     * without having counted in the horizon.
     */
    WITH horizon AS (
        SELECT min(f.first_id) AS id
          FROM (SELECT low FROM mfgsync.endpoint_state
                UNION ALL
                SELECT snapshot FROM mfgsync.consumer) AS p(pos)
         CROSS JOIN LATERAL (
                SELECT min(o.id) AS first_id FROM mfgsync.outbox o
                 WHERE o.xact_first
                   AND o.txid >= pg_snapshot_xmin(p.pos)::text::bigint
                   AND NOT pg_visible_in_snapshot(o.txid::text::xid8, p.pos)) AS f)
    DELETE FROM mfgsync.outbox o
     WHERE o.id < coalesce((SELECT h.id FROM horizon h), 9223372036854775807)
       AND o.created_at < now() - current_setting('mfgsync.retention')::interval
       AND NOT EXISTS (SELECT 1 FROM mfgsync.retry r WHERE r.event_id = o.id)
       AND NOT EXISTS (SELECT 1 FROM mfgsync.dead_letter d WHERE d.event_id = o.id);
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM mfgsync.failure f
     WHERE f.failed_at < now() - current_setting('mfgsync.retention')::interval;
    RETURN n;
END
$$;
COMMENT ON FUNCTION mfgsync.retire() IS
    'Delete settled events older than mfgsync.retention; returns how many';

CREATE VIEW mfgsync.endpoints AS
SELECT e.name, e.url, e.format,
       /* header values may be credentials: names only */
       CASE WHEN e.options ? 'headers'
            THEN e.options || jsonb_build_object('headers',
                   (SELECT coalesce(jsonb_object_agg(h.key, '********'), '{}')
                      FROM jsonb_each(e.options -> 'headers') h))
            ELSE e.options END AS options,
       e.owner, e.paused, e.paused_reason,
       array(SELECT s.message_type FROM mfgsync.subscription s
              WHERE s.endpoint_id = e.id ORDER BY 1) AS message_types,
       (s.secret IS NOT NULL) AS signed, e.created_at
  FROM mfgsync.endpoint e
  LEFT JOIN mfgsync.endpoint_secret s ON s.endpoint_id = e.id;
COMMENT ON VIEW mfgsync.endpoints IS
    'Endpoints with their options (header values masked) and subscribed message types, without secrets';

/*
 * pending: events of subscribed types that are not settled yet (in the
 * window or after it) plus those waiting for a retry.
 */
CREATE VIEW mfgsync.endpoint_status AS
SELECT e.name, e.paused, e.paused_reason,
       p.pending + r.waiting AS pending,
       now() - least(p.oldest, r.oldest) AS oldest_pending_age,
       c.delivered, c.failed, c.dead,
       le.last_status, le.last_error, le.last_error_at, c.last_success_at
  FROM mfgsync.endpoint e
  /* the sums over the endpoint's shards, and the latest error of any */
  CROSS JOIN LATERAL (
      SELECT sum(st.delivered)::bigint AS delivered, sum(st.failed)::bigint AS failed,
             sum(st.dead)::bigint AS dead, max(st.last_success_at) AS last_success_at
        FROM mfgsync.endpoint_state st WHERE st.endpoint_id = e.id) AS c
  LEFT JOIN LATERAL (
      SELECT st.last_status, st.last_error, st.last_error_at
        FROM mfgsync.endpoint_state st WHERE st.endpoint_id = e.id
       ORDER BY st.last_error_at DESC NULLS LAST LIMIT 1) AS le ON true
  CROSS JOIN LATERAL (
      SELECT count(*) AS pending, min(o.created_at) AS oldest
        FROM mfgsync.endpoint_state st
        /* from the smallest id of a transaction not visible in low on */
        CROSS JOIN LATERAL (
            SELECT min(f.id) AS first_id FROM mfgsync.outbox f
             WHERE f.xact_first
               AND f.txid >= pg_snapshot_xmin(st.low)::text::bigint
               AND NOT pg_visible_in_snapshot(f.txid::text::xid8, st.low)) AS f
        JOIN mfgsync.outbox o
          ON o.id >= f.first_id
         AND o.message_type IN (SELECT s.message_type FROM mfgsync.subscription s
                                 WHERE s.endpoint_id = e.id)
         AND NOT pg_visible_in_snapshot(o.txid::text::xid8, st.low)
         AND pg_visible_in_snapshot(o.txid::text::xid8, pg_current_snapshot())
         AND NOT (st.high IS NOT NULL
                  AND pg_visible_in_snapshot(o.txid::text::xid8, st.high)
                  AND o.id < st.next_id)
         AND (coalesce((e.options ->> 'workers')::int, 1) = 1
              OR mfgsync.shard_of(o.message_type || ' ' || coalesce(o.key::text, ''),
                                  (e.options ->> 'workers')::int) = st.shard)
       WHERE st.endpoint_id = e.id) AS p
  CROSS JOIN LATERAL (
      SELECT count(*) AS waiting, min(o.created_at) AS oldest
        FROM mfgsync.retry rt JOIN mfgsync.outbox o ON o.id = rt.event_id
       WHERE rt.endpoint_id = e.id) AS r;
COMMENT ON VIEW mfgsync.endpoint_status IS
    'Per endpoint: queue depth and age, counters, last error and last success';

CREATE VIEW mfgsync.dead_letters AS
SELECT e.name AS endpoint, d.event_id, o.message_type, o.action,
       o.key::jsonb AS key, o.data::jsonb AS data, d.reason, d.attempts,
       d.last_status, d.last_error, d.dead_at,
       d.description AS rejection_description, d.note AS rejection_note
  FROM mfgsync.dead_letter d
  JOIN mfgsync.endpoint e ON e.id = d.endpoint_id
  LEFT JOIN mfgsync.outbox o ON o.id = d.event_id;
COMMENT ON VIEW mfgsync.dead_letters IS
    'Events that exhausted their attempts or were rejected, with the last error';

CREATE VIEW mfgsync.failures AS
SELECT e.name AS endpoint, f.event_id, f.attempt, f.status, f.error,
       f.latency_ms, f.failed_at
  FROM mfgsync.failure f
  JOIN mfgsync.endpoint e ON e.id = f.endpoint_id;
COMMENT ON VIEW mfgsync.failures IS 'Every failed delivery attempt';

/* roles: the admin role manages endpoints; the monitor role sees status */
GRANT USAGE ON SCHEMA mfgsync TO mfgsync_monitor;
GRANT SELECT ON mfgsync.endpoint_status, mfgsync.dead_letters,
    mfgsync.failures, mfgsync.endpoints, mfgsync.tracked_tables TO mfgsync_monitor;
GRANT SELECT ON mfgsync.events, mfgsync.outbox TO mfgsync_admin;
GRANT SELECT ON mfgsync.endpoint_secret TO mfgsync_admin;
REVOKE ALL ON FUNCTION mfgsync.notify_senders() FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.endpoint_options(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.check_url(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.check_header(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.endpoint_start_position() FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.reshard_endpoint(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.endpoint_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.retire() FROM PUBLIC;
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'create_endpoint(text, text, text, jsonb)', 'alter_endpoint(text, jsonb)',
        'drop_endpoint(text)', 'pause_endpoint(text)', 'resume_endpoint(text)',
        'subscribe(text, text[], text)', 'store_subscription(text, text[], text)',
        'unsubscribe(text, text[])',
        'replay(text, bigint[])', 'replay(text, timestamptz, timestamptz)',
        'replay_key(text, text, jsonb, timestamptz)', 'retire()'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION mfgsync.%s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION mfgsync.%s TO mfgsync_admin', f);
    END LOOP;
END
$$;
