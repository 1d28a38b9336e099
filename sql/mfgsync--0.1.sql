/* sql/mfgsync--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION mfgsync" to load this file. \quit

/*
 * The outbox.  The capture trigger (src/capture.c, src/outbox.c) inserts
 * here in the transaction that changed the tracked row.  key, data and
 * old_data are stored as json text exactly as rendered; mfgsync.events
 * shows them as jsonb.  txid is the writing transaction's top-level
 * transaction id (the xid8 value, stored as bigint because only bigint has
 * a BRIN operator class): readers use it with snapshots to read in commit
 * order (read_events).
 *
 * The outbox is append-only, so its indexes are BRIN: an insert into an
 * unsummarized range costs next to nothing, where a B-tree insert per event
 * cost as much as the tracked table's own primary key (doc/benchmarks.md).
 * id needs no unique index: the sequence hands out each value once, and
 * nothing else writes here (PgQ's event tables have no key either).
 */
-- CACHE 1 is required: see "Ordering invariants" in src/outbox.c
CREATE SEQUENCE mfgsync.event_id_seq CACHE 1;

CREATE TABLE mfgsync.outbox (
    id           bigint      NOT NULL,
    txid         bigint      NOT NULL,
    message_type text        NOT NULL,
    action       text        NOT NULL,
    key          json,
    data         json,
    old_data     json,
    created_at   timestamptz NOT NULL
);
CREATE INDEX outbox_id_idx ON mfgsync.outbox USING brin (id)
    WITH (pages_per_range = 16);
CREATE INDEX outbox_txid_idx ON mfgsync.outbox USING brin (txid)
    WITH (pages_per_range = 16);
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
            DETAIL = 'A message type starts with a letter, has at most 63 characters, and contains only letters, digits, "_", "." and "-".';
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
                MESSAGE = 'key_columns must not contain null';
        ELSIF NOT EXISTS (SELECT 1 FROM pg_attribute a
                           WHERE a.attrelid = relation AND a.attname = col
                             AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('column "%s" of relation "%s" does not exist', col, relation),
                HINT = 'key_columns lists column names of the tracked table.';
        ELSIF col = ANY (keynames) THEN
            RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                MESSAGE = format('column "%s" appears more than once in key_columns', col);
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
                    MESSAGE = format('domain name of column "%s" must be a non-empty string', col);
            ELSIF dom = ANY (domains) THEN
                SELECT m.key INTO other FROM jsonb_each_text(columns) m
                 WHERE m.value = dom AND m.key <> col LIMIT 1;
                RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                    MESSAGE = format('domain name "%s" is used for more than one column', dom),
                    DETAIL = format('Columns "%s" and "%s" both map to it.', other, col);
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
                DETAIL = format('The key would be {%s}.', array_to_string(keynames, ', '));
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
    RETURN QUERY
    SELECT o.id, o.message_type, o.action, o.key::jsonb, o.data::jsonb,
           o.old_data::jsonb, o.created_at, o.txid::text::xid8
      FROM mfgsync.outbox o
     WHERE o.txid >= pg_snapshot_xmin(prev)::text::bigint
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
