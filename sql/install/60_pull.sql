
/*
 * Pull jobs (doc/pull.md): a source (a relation of any kind, foreign tables
 * included, or a query) copied into a staging table.
 *
 * A run reads the source once into a temporary table (rows beyond the
 * watermark only, with a plain "col >= literal" predicate an FDW can push
 * down), then MERGEs it into the target keyed by key_columns, touching only
 * rows whose values differ, so the capture trigger of a tracked target sees
 * real changes only.  A full read with delete_missing deletes (or marks)
 * target rows absent from the source.  The new watermark is written to the
 * job row in the run's transaction: it advances only if the run commits.
 *
 * Everything that touches the source and the target runs with the
 * privileges of the caller (the functions are SECURITY INVOKER); the
 * background worker runs scheduled jobs as the job's owner.  Nothing ever
 * writes to the source.  SQL is built with format('%I'/'%L') and regclass
 * output only; a query source must be exactly one plain SELECT, checked by
 * the parser (mfgsync.pull_source_columns, src/pull.c).
 */
CREATE TABLE mfgsync.pull_job (
    id             serial      PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    source         text        NOT NULL,   -- as given: a relation name or a query
    source_relation regclass,              -- the relation; NULL for a query
    target         regclass    NOT NULL,
    key_columns    text[]      NOT NULL,
    watermark      text,                   -- source column, NULL: every run is full
    every          interval,               -- NULL: run by hand (or by pg_cron) only
    delete_missing boolean     NOT NULL DEFAULT false,
    options        jsonb       NOT NULL DEFAULT '{}',
    owner          regrole     NOT NULL,
    search_path    text        NOT NULL,   -- the creator's: names in the source resolve in it
    last_watermark jsonb,                  -- highest watermark read by a committed run
    last_full_at   timestamptz,            -- last committed full read
    failures       integer     NOT NULL DEFAULT 0,  -- consecutive failed scheduled runs
    next_run_at    timestamptz,            -- when the scheduler runs it next
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mfgsync.pull_job IS
    'Pull jobs: a source copied into a staging table, by hand or on a schedule';

CREATE TABLE mfgsync.pull_run (
    id            bigserial   PRIMARY KEY,
    job_id        integer     NOT NULL REFERENCES mfgsync.pull_job ON DELETE CASCADE,
    trigger       text        NOT NULL,   -- manual | schedule
    status        text        NOT NULL,   -- running | succeeded | failed | skipped | abandoned
    full_read     boolean,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    rows_read     bigint,
    rows_inserted bigint,
    rows_updated  bigint,
    rows_deleted  bigint,
    watermark_from jsonb,
    watermark_to  jsonb,
    error         text,
    sqlstate      text
);
CREATE INDEX pull_run_job_idx ON mfgsync.pull_run (job_id, id);
COMMENT ON TABLE mfgsync.pull_run IS
    'One row per pull job run, written by the run (or by the worker for a failed one)';

SELECT pg_catalog.pg_extension_config_dump('mfgsync.pull_job', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.pull_run', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.pull_job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('mfgsync.pull_run_id_seq', '');

CREATE VIEW mfgsync.pull_runs AS
SELECT r.id, j.name AS job, r.trigger, r.status, r.full_read,
       r.started_at, r.finished_at, r.finished_at - r.started_at AS duration,
       r.rows_read, r.rows_inserted, r.rows_updated, r.rows_deleted,
       r.watermark_from, r.watermark_to, r.error, r.sqlstate
  FROM mfgsync.pull_run r JOIN mfgsync.pull_job j ON j.id = r.job_id;
COMMENT ON VIEW mfgsync.pull_runs IS
    'History of pull job runs';

CREATE VIEW mfgsync.pull_jobs AS
SELECT j.name, j.source, j.target, j.key_columns, j.watermark, j.every,
       j.delete_missing, j.options, j.owner, j.last_watermark, j.last_full_at,
       j.failures, j.next_run_at,
       (SELECT r.status FROM mfgsync.pull_run r
         WHERE r.job_id = j.id ORDER BY r.id DESC LIMIT 1) AS last_status,
       (SELECT r.error FROM mfgsync.pull_run r
         WHERE r.job_id = j.id AND r.error IS NOT NULL
         ORDER BY r.id DESC LIMIT 1) AS last_error
  FROM mfgsync.pull_job j;
COMMENT ON VIEW mfgsync.pull_jobs IS
    'Pull jobs with their watermark, schedule and last outcome';

/* the columns of a source (relation or single SELECT), parsed, not run */
CREATE FUNCTION mfgsync.pull_source_columns(source text,
                                            OUT name text, OUT type text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mfgsync_pull_source_columns'
LANGUAGE C STRICT;
COMMENT ON FUNCTION mfgsync.pull_source_columns(text) IS
    'Names and types of the columns a pull source yields; the source is parsed, not run';

/* the launcher re-reads the schedule when the transaction commits */
CREATE FUNCTION mfgsync.pull_notify_launcher()
RETURNS void
AS 'MODULE_PATHNAME', 'mfgsync_pull_notify_launcher'
LANGUAGE C VOLATILE;

/*
 * pull_options: validated options, defaults filled in.
 *   delete_mode   'delete' (default) or 'mark'
 *   mark_column   target column set for rows missing from the source
 *                 (boolean: true; timestamp/timestamptz: the run's time)
 *   full_every    interval: with watermark and delete_missing, how often a
 *                 scheduled run reads everything to detect deletions
 *   max_backoff   interval: the longest delay after repeated failures
 *   delete_on_empty  boolean: may a full read of no rows empty the target?
 */
CREATE FUNCTION mfgsync.pull_options(options jsonb, target regclass)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    opts jsonb := coalesce(options, '{}');
    mark_type regtype;
BEGIN
    IF jsonb_typeof(opts) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'pull job options must be a JSON object';
    END IF;
    FOR k IN SELECT jsonb_object_keys(opts) LOOP
        IF k NOT IN ('delete_mode', 'mark_column', 'full_every', 'max_backoff',
                     'delete_on_empty') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown pull job option "%s"', k),
                HINT = 'Valid options are: delete_mode, mark_column, full_every, max_backoff, delete_on_empty.';
        END IF;
    END LOOP;
    opts := jsonb_build_object('delete_mode', 'delete', 'max_backoff', '1 hour',
                               'delete_on_empty', false) || opts;
    IF jsonb_typeof(opts -> 'delete_mode') <> 'string'
       OR opts ->> 'delete_mode' NOT IN ('delete', 'mark') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid delete_mode %s', opts -> 'delete_mode'),
            HINT = 'Valid delete modes are: delete, mark.';
    END IF;
    IF opts ->> 'delete_mode' = 'mark' THEN
        IF jsonb_typeof(opts -> 'mark_column') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'delete_mode "mark" needs the option mark_column',
                HINT = 'Name a boolean or timestamp column of the target, e.g. {"delete_mode": "mark", "mark_column": "missing"}.';
        END IF;
        SELECT a.atttypid::regtype INTO mark_type FROM pg_attribute a
         WHERE a.attrelid = target AND a.attname = opts ->> 'mark_column'
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF mark_type IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('mark_column "%s" is not a column of "%s"',
                                 opts ->> 'mark_column', target);
        ELSIF mark_type NOT IN ('boolean'::regtype, 'timestamptz'::regtype,
                                'timestamp'::regtype) THEN
            RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                MESSAGE = format('mark_column "%s" must be boolean, timestamp or timestamptz, not %s',
                                 opts ->> 'mark_column', mark_type);
        END IF;
    ELSIF opts ? 'mark_column' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'option mark_column needs delete_mode "mark"';
    END IF;
    FOREACH k IN ARRAY ARRAY['full_every', 'max_backoff'] LOOP
        IF opts ? k THEN
            BEGIN
                IF jsonb_typeof(opts -> k) <> 'string' OR (opts ->> k)::interval <= interval '0' THEN
                    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value';
                END IF;
            EXCEPTION WHEN invalid_parameter_value OR invalid_datetime_format
                           OR datetime_field_overflow OR interval_field_overflow THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('option %s must be a positive interval, not %s', k, opts -> k),
                    HINT = 'Write it as a string, e.g. "1 hour".';
            END;
        END IF;
    END LOOP;
    IF jsonb_typeof(opts -> 'delete_on_empty') <> 'boolean' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('option delete_on_empty must be true or false, not %s',
                             opts -> 'delete_on_empty');
    END IF;
    RETURN opts;
END
$$;

/*
 * pull_plan: check a job against the current catalog and build the SQL of
 * a run.  Called by create_pull/alter_pull (so mismatches surface then) and
 * again by every run (so drift since then surfaces as a clear error).
 * Source columns are matched to target columns by name: every source
 * column needs a target column, the key and watermark columns must be in
 * the source, and a target column the source lacks must accept NULL or
 * have a default.  The statements use %1$s for the relation holding the
 * rows read (target-typed columns plus _mfgsync_wm, the raw watermark).
 */
CREATE FUNCTION mfgsync.pull_plan(job mfgsync.pull_job,
                                  OUT read_sql text, OUT merge_sql text,
                                  OUT new_sql text, OUT delete_sql text,
                                  OUT probe_sql text, OUT wm_type text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src_text  text;
    cols      text[] := '{}';      -- columns copied, in source order
    casts     text[] := '{}';      -- CAST(s.col AS target type) AS col
    nulls     text[] := '{}';      -- CAST(NULL AS source type) AS col
    nonkey    text[] := '{}';
    r         record;
    c         text;
    on_keys   text;
    mark      text := job.options ->> 'mark_column';
    mark_set  text;
    mark_unset text;
    mark_type regtype;
    src_cols  text[];            -- name, type, name, type, ...
    pinned    text := current_setting('search_path');
BEGIN
    IF job.source_relation IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = job.source_relation) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_table',
                MESSAGE = format('source relation of pull job "%s" no longer exists', job.name),
                HINT = 'Drop the job, or create it again with an existing source.';
        END IF;
        src_text := job.source_relation::text;
    ELSE
        src_text := '(' || job.source || ')';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = job.target) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('target of pull job "%s" no longer exists', job.name);
    END IF;

    /* names in a query source resolve in the job's search path */
    PERFORM set_config('search_path', job.search_path, true);
    SELECT array_agg(v.x ORDER BY v.o) INTO src_cols
      FROM mfgsync.pull_source_columns(coalesce('TABLE ' || job.source_relation::text, job.source))
           WITH ORDINALITY c(name, type, ord),
           LATERAL (VALUES (2 * ord, c.type), (2 * ord - 1, c.name)) v(o, x);
    PERFORM set_config('search_path', pinned, true);

    FOR r IN
        SELECT s.name, s.type, a.attname IS NOT NULL AS in_target,
               format_type(a.atttypid, a.atttypmod) AS ttype
          FROM (SELECT src_cols[2 * i - 1] AS name, src_cols[2 * i] AS type, i
                  FROM generate_series(1, cardinality(src_cols) / 2) i) s
               LEFT JOIN pg_attribute a
                      ON a.attrelid = job.target AND a.attname = s.name
                     AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY s.i
    LOOP
        IF NOT r.in_target THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('source column "%s" of pull job "%s" has no column in target "%s"',
                                 r.name, job.name, job.target),
                DETAIL = 'Source columns are copied into the target column of the same name.',
                HINT = 'Add the column to the target, or use a query as the source that selects and renames the columns to copy.';
        END IF;
        IF r.name = '_mfgsync_wm' THEN
            RAISE EXCEPTION USING ERRCODE = 'reserved_name',
                MESSAGE = 'column name "_mfgsync_wm" is reserved for pull jobs';
        END IF;
        cols := cols || r.name;
        casts := casts || format('CAST(s.%I AS %s) AS %I', r.name, r.ttype, r.name);
        nulls := nulls || format('CAST(CAST(NULL AS %s) AS %s) AS %I', r.type, r.ttype, r.name);
        IF r.name = job.watermark THEN
            wm_type := r.type;
        END IF;
    END LOOP;
    IF cardinality(cols) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('source of pull job "%s" has no columns', job.name);
    END IF;

    FOREACH c IN ARRAY job.key_columns LOOP
        IF NOT c = ANY (cols) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('key column "%s" of pull job "%s" is not a source column', c, job.name),
                HINT = 'Every key column must be read from the source.';
        END IF;
    END LOOP;
    IF job.watermark IS NOT NULL AND wm_type IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_column',
            MESSAGE = format('watermark column "%s" of pull job "%s" is not a source column',
                             job.watermark, job.name);
    END IF;

    /* target columns the source does not fill */
    FOR r IN
        SELECT a.attname FROM pg_attribute a
         WHERE a.attrelid = job.target AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = ''
           AND a.attgenerated = ''
           AND NOT a.attname = ANY (cols)
           AND a.attname IS DISTINCT FROM mark
    LOOP
        RAISE EXCEPTION USING ERRCODE = 'undefined_column',
            MESSAGE = format('target column "%s" of pull job "%s" is NOT NULL without a default and not in the source',
                             r.attname, job.name),
            HINT = 'Read the column from the source, or give it a default.';
    END LOOP;

    SELECT string_agg(format('t.%1$I = s.%1$I', k), ' AND ') INTO on_keys
      FROM unnest(job.key_columns) k;
    SELECT array_agg(x) INTO nonkey FROM unnest(cols) x
     WHERE NOT x = ANY (job.key_columns);

    IF mark IS NOT NULL THEN
        SELECT a.atttypid::regtype INTO mark_type FROM pg_attribute a
         WHERE a.attrelid = job.target AND a.attname = mark
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF mark_type IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('mark_column "%s" is not a column of "%s"', mark, job.target);
        END IF;
        IF mark = ANY (cols) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('mark_column "%s" must not be a source column', mark);
        END IF;
        mark_set := CASE WHEN mark_type = 'boolean'::regtype THEN 'true'
                         ELSE 'CAST(now() AS ' || mark_type::text || ')' END;
        mark_unset := CASE WHEN mark_type = 'boolean'::regtype THEN 'false' ELSE 'NULL' END;
    END IF;

    read_sql := format('SELECT %s%s FROM %s AS s%%s',
                       array_to_string(casts, ', '),
                       CASE WHEN job.watermark IS NOT NULL
                            THEN format(', s.%I AS _mfgsync_wm', job.watermark) ELSE '' END,
                       src_text);
    probe_sql := format('SELECT %s%s WHERE false',
                        array_to_string(nulls, ', '),
                        CASE WHEN job.watermark IS NOT NULL
                             THEN format(', CAST(NULL AS %s) AS _mfgsync_wm', wm_type) ELSE '' END);

    merge_sql := format('MERGE INTO %s AS t USING %%1$s AS s ON %s', job.target, on_keys);
    IF cardinality(nonkey) > 0 OR mark IS NOT NULL THEN
        merge_sql := merge_sql || format(' WHEN MATCHED AND (%s) THEN UPDATE SET %s',
            (SELECT string_agg(x, ' OR ') FROM (
                SELECT format('t.%1$I IS DISTINCT FROM s.%1$I', n) FROM unnest(nonkey) n
                UNION ALL
                SELECT format('t.%I IS DISTINCT FROM %s', mark, mark_unset) WHERE mark IS NOT NULL) u(x)),
            (SELECT string_agg(x, ', ') FROM (
                SELECT format('%1$I = s.%1$I', n) FROM unnest(nonkey) n
                UNION ALL
                SELECT format('%I = %s', mark, mark_unset) WHERE mark IS NOT NULL) u(x)));
    END IF;
    merge_sql := merge_sql || format(' WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)',
        (SELECT string_agg(format('%I', x), ', ') FROM unnest(cols) x),
        (SELECT string_agg(format('s.%I', x), ', ') FROM unnest(cols) x));

    new_sql := format('SELECT count(*) FROM %%1$s AS s WHERE NOT EXISTS (SELECT 1 FROM %s AS t WHERE %s)',
                      job.target, on_keys);

    IF job.delete_missing THEN
        IF mark IS NULL THEN
            delete_sql := format('DELETE FROM %s AS t WHERE NOT EXISTS (SELECT 1 FROM %%1$s AS s WHERE %s)',
                                 job.target, on_keys);
        ELSE
            delete_sql := format('UPDATE %s AS t SET %I = %s WHERE t.%I IS NOT DISTINCT FROM %s'
                                 ' AND NOT EXISTS (SELECT 1 FROM %%1$s AS s WHERE %s)',
                                 job.target, mark, mark_set, mark, mark_unset, on_keys);
        END IF;
    END IF;
END
$$;

/*
 * pull_validate: the checks of create_pull/alter_pull.  Builds the plan
 * and has the server analyze (EXPLAIN, not run) its MERGE and DELETE over
 * typed NULLs in place of the rows read: types that do not fit, operators
 * that do not exist and missing privileges on the target show now.  The
 * source itself is only parsed, never contacted.
 */
CREATE FUNCTION mfgsync.pull_validate(job mfgsync.pull_job)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
BEGIN
    IF job.every IS NOT NULL AND job.every < interval '1 second' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('pull job interval must be at least 1 second, not %s', job.every);
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = job.target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target "%s" of a pull job must be a table', job.target),
            HINT = 'Pull into a staging table (and track it with mfgsync.track()).';
    END IF;
    IF job.source_relation = job.target THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'the source and the target of a pull job must differ';
    END IF;
    p := mfgsync.pull_plan(job);
    BEGIN
        EXECUTE 'EXPLAIN ' || format(p.merge_sql, '(' || p.probe_sql || ')');
        IF p.delete_sql IS NOT NULL THEN
            EXECUTE 'EXPLAIN ' || format(p.delete_sql, '(' || p.probe_sql || ')');
        END IF;
        IF job.watermark IS NOT NULL THEN
            EXECUTE format('EXPLAIN SELECT max(s._mfgsync_wm) FROM (%s) s', p.probe_sql);
        END IF;
    EXCEPTION
        WHEN datatype_mismatch OR undefined_function OR indeterminate_datatype
             OR cannot_coerce THEN
            RAISE EXCEPTION USING ERRCODE = 'datatype_mismatch',
                MESSAGE = format('pull job "%s": source and target columns do not fit', job.name),
                DETAIL = SQLERRM,
                HINT = 'Change the column types, or use a query as the source that casts the columns.';
    END;
END
$$;

/*
 * pull_source_relation: the relation a source names, or NULL for a query
 * (text starting with SELECT, WITH, VALUES or TABLE); anything else is an
 * error.  It resolves names in the caller's search_path (no SET clause),
 * so it qualifies what it calls itself.
 */
CREATE FUNCTION mfgsync.pull_source_relation(source text)
RETURNS regclass
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    rel regclass;
BEGIN
    IF source IS NULL OR pg_catalog.btrim(source) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'pull job source must not be empty',
            HINT = 'Name a table, view or foreign table, or give a SELECT query.';
    END IF;
    IF source OPERATOR(pg_catalog.~*) '^\s*\(*\s*(select|with|values|table)\M' THEN
        RETURN NULL;
    END IF;
    BEGIN
        rel := pg_catalog.to_regclass(source);
    EXCEPTION WHEN invalid_name OR syntax_error THEN
        rel := NULL;
    END;
    IF rel IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = pg_catalog.format('pull job source "%s" is neither an existing relation nor a query', source),
            HINT = 'Name a table, view or foreign table, or give a SELECT query.';
    END IF;
    RETURN rel;
END
$$;

CREATE FUNCTION mfgsync.pull_job_by_name(name text)
RETURNS mfgsync.pull_job
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job;
BEGIN
    SELECT * INTO job FROM mfgsync.pull_job j WHERE j.name = pull_job_by_name.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pull job "%s" does not exist', name),
            HINT = 'mfgsync.pull_jobs lists the pull jobs.';
    END IF;
    IF NOT pg_has_role(current_user, job.owner, 'MEMBER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('must be a member of role "%s" to manage or run pull job "%s"',
                             job.owner, job.name),
            DETAIL = 'A pull job runs its source query with the privileges of its owner.';
    END IF;
    RETURN job;
END
$$;

CREATE FUNCTION mfgsync.pull_create(name text, source text, target regclass,
                                    key_columns text[], watermark text,
                                    every interval, delete_missing boolean,
                                    options jsonb, search_path text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job;
    pinned text := current_setting('search_path');
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid pull job name "%s"', name),
            HINT = 'Use 1 to 63 letters, digits, "_", "." or "-".';
    END IF;
    IF target IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'pull job target must not be null';
    END IF;
    IF EXISTS (SELECT 1 FROM mfgsync.pull_job j WHERE j.name = pull_create.name) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('pull job "%s" already exists', name);
    END IF;

    job.id := 0;
    job.name := name;
    job.source := source;
    job.search_path := pull_create.search_path;
    PERFORM set_config('search_path', job.search_path, true);
    job.source_relation := mfgsync.pull_source_relation(source);
    PERFORM set_config('search_path', pinned, true);
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = target) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('target "%s" of a pull job must be a table', target),
            HINT = 'Pull into a staging table (and track it with mfgsync.track()).';
    END IF;
    job.target := target;
    job.key_columns := key_columns;
    IF job.key_columns IS NULL THEN
        SELECT array_agg(a.attname::text ORDER BY k.ord) INTO job.key_columns
          FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = target AND i.indisprimary;
        IF job.key_columns IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('target "%s" has no primary key', target),
                HINT = 'Give key_columns, or add a primary key to the target.';
        END IF;
    ELSIF cardinality(job.key_columns) = 0 OR array_position(job.key_columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'key_columns must name at least one column and contain no NULL';
    END IF;
    job.watermark := watermark;
    job.every := every;
    job.delete_missing := coalesce(delete_missing, false);
    job.options := mfgsync.pull_options(options, target);
    job.owner := current_user::regrole;
    job.failures := 0;
    job.next_run_at := CASE WHEN every IS NOT NULL THEN now() END;
    PERFORM mfgsync.pull_validate(job);

    INSERT INTO mfgsync.pull_job (name, source, source_relation, target, key_columns,
                                  watermark, every, delete_missing, options, owner,
                                  search_path, next_run_at)
    VALUES (job.name, job.source, job.source_relation, job.target, job.key_columns,
            job.watermark, job.every, job.delete_missing, job.options, job.owner,
            job.search_path, job.next_run_at)
    RETURNING id INTO job.id;
    PERFORM mfgsync.pull_notify_launcher();
    RETURN job.id;
END
$$;

/*
 * The SQL surface: create_pull and alter_pull record the caller's
 * search_path, in which the names in the source are resolved now and at
 * every run (the functions doing the work pin their own).
 */
CREATE FUNCTION mfgsync.create_pull(name text, source text, target regclass,
                                    key_columns text[] DEFAULT NULL,
                                    watermark text DEFAULT NULL,
                                    every interval DEFAULT NULL,
                                    delete_missing boolean DEFAULT false,
                                    options jsonb DEFAULT '{}')
RETURNS integer
LANGUAGE sql
AS $$
    SELECT mfgsync.pull_create(name, source, target, key_columns, watermark, every,
                               delete_missing, options,
                               pg_catalog.current_setting('search_path'));
$$;
COMMENT ON FUNCTION mfgsync.create_pull(text, text, regclass, text[], text, interval, boolean, jsonb) IS
    'Create a pull job copying a relation or query into a staging table';

/*
 * alter_pull: change a job.  options may hold the job's parameters
 * (source, target, key_columns, watermark, every, delete_missing) and its
 * options; a key set to JSON null resets it (watermark, every).  Changing
 * the source, target or watermark forgets the watermark read so far.
 */
CREATE FUNCTION mfgsync.pull_alter(name text, options jsonb, search_path text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job := mfgsync.pull_job_by_name(name);
    pinned text := current_setting('search_path');
    old mfgsync.pull_job := job;
    k text;
    v jsonb;
    opts jsonb := job.options;
BEGIN
    IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'alter_pull options must be a JSON object';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(options) LOOP
        CASE k
        WHEN 'source' THEN
            job.source := v #>> '{}';
            job.search_path := pull_alter.search_path;
            PERFORM set_config('search_path', job.search_path, true);
            job.source_relation := mfgsync.pull_source_relation(job.source);
            PERFORM set_config('search_path', pinned, true);
        WHEN 'target' THEN
            PERFORM set_config('search_path', pull_alter.search_path, true);
            job.target := (v #>> '{}')::regclass;
            PERFORM set_config('search_path', pinned, true);
        WHEN 'key_columns' THEN
            IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'key_columns must be a non-empty JSON array of column names';
            END IF;
            job.key_columns := ARRAY(SELECT jsonb_array_elements_text(v));
        WHEN 'watermark' THEN
            job.watermark := v #>> '{}';
        WHEN 'every' THEN
            job.every := (v #>> '{}')::interval;
        WHEN 'delete_missing' THEN
            IF jsonb_typeof(v) <> 'boolean' THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'delete_missing must be true or false';
            END IF;
            job.delete_missing := v::boolean;
        ELSE
            opts := CASE WHEN v = 'null' THEN opts - k ELSE opts || jsonb_build_object(k, v) END;
        END CASE;
    END LOOP;
    job.options := mfgsync.pull_options(opts, job.target);
    IF job.source IS DISTINCT FROM old.source OR job.target IS DISTINCT FROM old.target
       OR job.watermark IS DISTINCT FROM old.watermark THEN
        job.last_watermark := NULL;
    END IF;
    IF job.every IS DISTINCT FROM old.every THEN
        job.next_run_at := CASE WHEN job.every IS NOT NULL THEN now() END;
        job.failures := 0;
    END IF;
    PERFORM mfgsync.pull_validate(job);
    UPDATE mfgsync.pull_job j
       SET source = job.source, source_relation = job.source_relation,
           target = job.target, key_columns = job.key_columns,
           watermark = job.watermark, every = job.every,
           delete_missing = job.delete_missing, options = job.options,
           last_watermark = job.last_watermark, next_run_at = job.next_run_at,
           failures = job.failures, search_path = job.search_path
     WHERE j.id = job.id;
    PERFORM mfgsync.pull_notify_launcher();
END
$$;

CREATE FUNCTION mfgsync.alter_pull(name text, options jsonb)
RETURNS void
LANGUAGE sql
AS $$
    SELECT mfgsync.pull_alter(name, options, pg_catalog.current_setting('search_path'));
$$;
COMMENT ON FUNCTION mfgsync.alter_pull(text, jsonb) IS
    'Change a pull job: its parameters and options, as a JSON object';

CREATE FUNCTION mfgsync.drop_pull(name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job := mfgsync.pull_job_by_name(name);
BEGIN
    DELETE FROM mfgsync.pull_job j WHERE j.id = job.id;
    PERFORM mfgsync.pull_notify_launcher();
END
$$;
COMMENT ON FUNCTION mfgsync.drop_pull(text) IS
    'Drop a pull job and its run history';

/*
 * pull_read_sql: the statement reading the source for a run.  An
 * incremental read adds a plain "column >= literal" predicate, which
 * planners push into subqueries and FDWs (postgres_fdw, mysql_fdw, ...)
 * send to the remote side.  ">=" rather than ">": rows that share the
 * last watermark value but committed after the last read are not lost;
 * re-reading the rows at the boundary changes nothing in the target.
 */
CREATE FUNCTION mfgsync.pull_read_sql(job mfgsync.pull_job, read_sql text, wm_type text,
                                     full_read boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(read_sql,
                  CASE WHEN full_read OR job.watermark IS NULL OR job.last_watermark IS NULL
                       THEN ''
                       ELSE format(' WHERE s.%I >= %L::%s', job.watermark,
                                   job.last_watermark #>> '{}', wm_type) END);
$$;

/*
 * pull_explain: EXPLAIN VERBOSE of the read the next run would do: through
 * an FDW it shows the remote query, watermark predicate included.
 */
CREATE FUNCTION mfgsync.pull_explain(name text, full_read boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job := mfgsync.pull_job_by_name(name);
    p record := mfgsync.pull_plan(job);
    sql text := mfgsync.pull_read_sql(job, p.read_sql, p.wm_type, full_read);
BEGIN
    PERFORM set_config('search_path', job.search_path, true);
    RETURN QUERY EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || sql;
END
$$;
COMMENT ON FUNCTION mfgsync.pull_explain(text, boolean) IS
    'The plan of the source read the next run of a pull job would do (EXPLAIN VERBOSE)';

/*
 * pull_execute: one run of a job, in the caller's transaction, under the
 * caller's privileges; updates the run row "run" (which must exist) and
 * the job's watermark.  Raises lock_not_available when another run of the
 * job holds its lock.  Errors propagate: the caller's transaction (and
 * with it every row this run wrote) rolls back.
 */
CREATE FUNCTION mfgsync.pull_execute(job_id integer, run bigint, full_read boolean,
                                     OUT rows_read bigint, OUT rows_inserted bigint,
                                     OUT rows_updated bigint, OUT rows_deleted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job   mfgsync.pull_job;
    p     record;
    tmp   text := 'mfgsync_pull_' || job_id;
    is_full boolean;
    merged bigint;
    new_wm jsonb;
    pinned text := current_setting('search_path');
    hashjoin text;
    mergejoin text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('mfgsync pull'), job_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'lock_not_available',
            MESSAGE = format('pull job "%s" is already running',
                             (SELECT j.name FROM mfgsync.pull_job j WHERE j.id = job_id)),
            HINT = 'Runs of one job never overlap; try again when the running one has ended.';
    END IF;
    SELECT * INTO job FROM mfgsync.pull_job j WHERE j.id = job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('pull job %s does not exist', job_id);
    END IF;
    /* we hold the job's lock: a "running" row of another run is a dead run's */
    UPDATE mfgsync.pull_run r SET status = 'abandoned', finished_at = clock_timestamp(),
           error = 'the run ended without recording its outcome'
     WHERE r.job_id = job.id AND r.status = 'running' AND r.id <> run;

    is_full := job.watermark IS NULL OR job.last_watermark IS NULL OR coalesce(full_read, false);
    p := mfgsync.pull_plan(job);

    IF to_regclass('pg_temp.' || quote_ident(tmp)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pg_temp.%I', tmp);   -- an earlier run in this transaction
    END IF;
    /* the one read of the source, with names resolved in the job's path */
    PERFORM set_config('search_path', job.search_path, true);
    EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS ', tmp)
            || mfgsync.pull_read_sql(job, p.read_sql, p.wm_type, is_full);
    GET DIAGNOSTICS rows_read = ROW_COUNT;
    PERFORM set_config('search_path', pinned, true);
    tmp := 'pg_temp.' || quote_ident(tmp);
    EXECUTE format('ANALYZE %s', tmp);

    IF job.watermark IS NOT NULL THEN
        EXECUTE format('SELECT to_jsonb(max(_mfgsync_wm)) FROM %s', tmp) INTO new_wm;
    END IF;

    /*
     * A small copy against a big target (an incremental run): probe the
     * target's key index row by row.  Left to itself the planner hashes
     * the whole target for each statement, which made an incremental run
     * of 1% cost 10% of the full load (doc/pull.md, Benchmark).
     */
    IF rows_read * 10 < (SELECT greatest(c.reltuples, pg_relation_size(c.oid) / 8192 * 50)
                           FROM pg_class c WHERE c.oid = job.target) THEN
        hashjoin := current_setting('enable_hashjoin');
        mergejoin := current_setting('enable_mergejoin');
        PERFORM set_config('enable_hashjoin', 'off', true);
        PERFORM set_config('enable_mergejoin', 'off', true);
    END IF;
    EXECUTE format(p.new_sql, tmp) INTO rows_inserted;
    BEGIN
        EXECUTE format(p.merge_sql, tmp);
        GET DIAGNOSTICS merged = ROW_COUNT;
    EXCEPTION WHEN cardinality_violation OR unique_violation THEN
        RAISE EXCEPTION USING ERRCODE = 'cardinality_violation',
            MESSAGE = format('pull job "%s": the source has more than one row for a key', job.name),
            DETAIL = SQLERRM,
            HINT = format('The key columns (%s) must identify one source row.',
                          array_to_string(job.key_columns, ', '));
    END;
    IF hashjoin IS NOT NULL THEN
        PERFORM set_config('enable_hashjoin', hashjoin, true);
        PERFORM set_config('enable_mergejoin', mergejoin, true);
    END IF;
    rows_updated := merged - rows_inserted;
    rows_deleted := 0;
    IF is_full AND p.delete_sql IS NOT NULL THEN
        IF rows_read = 0 AND NOT (job.options ->> 'delete_on_empty')::boolean THEN
            RAISE EXCEPTION USING ERRCODE = 'no_data_found',
                MESSAGE = format('pull job "%s": the source returned no rows, so every staging row would be deleted', job.name),
                HINT = 'Set the option delete_on_empty to true if an empty source is expected.';
        END IF;
        EXECUTE format(p.delete_sql, tmp);
        GET DIAGNOSTICS rows_deleted = ROW_COUNT;
    END IF;
    EXECUTE format('DROP TABLE %s', tmp);

    UPDATE mfgsync.pull_job j
       SET last_watermark = CASE WHEN j.watermark IS NULL THEN NULL
                                 ELSE coalesce(new_wm, j.last_watermark) END,
           last_full_at = CASE WHEN is_full THEN now() ELSE j.last_full_at END
     WHERE j.id = job.id;
    UPDATE mfgsync.pull_run r
       SET status = 'succeeded', finished_at = clock_timestamp(), full_read = is_full,
           rows_read = pull_execute.rows_read, rows_inserted = pull_execute.rows_inserted,
           rows_updated = pull_execute.rows_updated, rows_deleted = pull_execute.rows_deleted,
           watermark_from = job.last_watermark,
           watermark_to = CASE WHEN job.watermark IS NOT NULL
                               THEN coalesce(new_wm, job.last_watermark) END
     WHERE r.id = run;
END
$$;

/* a run row in state "running" */
CREATE FUNCTION mfgsync.pull_begin(job_id integer, trigger text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO mfgsync.pull_run (job_id, trigger, status, started_at)
    VALUES (job_id, trigger, 'running', clock_timestamp())
    RETURNING id;
$$;

CREATE FUNCTION mfgsync.run_pull(name text, full_read boolean DEFAULT false,
                                 OUT rows_read bigint, OUT rows_inserted bigint,
                                 OUT rows_updated bigint, OUT rows_deleted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job := mfgsync.pull_job_by_name(name);
    r record;
BEGIN
    r := mfgsync.pull_execute(job.id, mfgsync.pull_begin(job.id, 'manual'), full_read);
    rows_read := r.rows_read;
    rows_inserted := r.rows_inserted;
    rows_updated := r.rows_updated;
    rows_deleted := r.rows_deleted;
END
$$;
COMMENT ON FUNCTION mfgsync.run_pull(text, boolean) IS
    'Run a pull job now, in this transaction; full_read reads everything regardless of the watermark';

/*
 * The scheduler's side (src/pull.c).  pull_scheduled runs a due job as the
 * worker's transaction 2 (after pull_begin committed the running row) and
 * schedules the next run; pull_failed records a failed run in a fresh
 * transaction and backs off: after n consecutive failures the next run
 * waits every * 2^(n-1), at most max_backoff (but at least every).
 */
CREATE FUNCTION mfgsync.pull_scheduled(job_id integer, run bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job mfgsync.pull_job;
BEGIN
    SELECT * INTO job FROM mfgsync.pull_job j WHERE j.id = job_id;
    PERFORM mfgsync.pull_execute(job_id, run,
        job.delete_missing AND job.options ? 'full_every'
        AND (job.last_full_at IS NULL
             OR now() >= job.last_full_at + (job.options ->> 'full_every')::interval));
    UPDATE mfgsync.pull_job j
       SET failures = 0,
           next_run_at = greatest(j.next_run_at + j.every, now() + j.every / 2)
     WHERE j.id = job_id;
END
$$;

CREATE FUNCTION mfgsync.pull_failed(job_id integer, run bigint, error text, sqlstate text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    skipped boolean := sqlstate = '55P03';  -- lock_not_available: another run is on
BEGIN
    UPDATE mfgsync.pull_run r
       SET status = CASE WHEN skipped THEN 'skipped' ELSE 'failed' END,
           finished_at = clock_timestamp(), error = pull_failed.error,
           sqlstate = pull_failed.sqlstate
     WHERE r.id = run;
    UPDATE mfgsync.pull_job j
       SET failures = CASE WHEN skipped THEN j.failures ELSE j.failures + 1 END,
           next_run_at = now() + CASE WHEN skipped OR j.every IS NULL THEN j.every
               ELSE greatest(j.every,
                             least(j.every * power(2, least(j.failures, 20))::int,
                                   (j.options ->> 'max_backoff')::interval)) END
     WHERE j.id = job_id;
END
$$;

/*
 * pull_due: for the launcher, the scheduled jobs due now, oldest first,
 * and the time until the next one (NULL when no job is scheduled).
 */
CREATE FUNCTION mfgsync.pull_due(OUT job_id integer, OUT owner oid, OUT wait_ms bigint)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT j.id, j.owner::oid,
           greatest(0, ceil(extract(epoch FROM j.next_run_at - clock_timestamp()) * 1000))::bigint
      FROM mfgsync.pull_job j
     WHERE j.every IS NOT NULL AND j.next_run_at IS NOT NULL
     ORDER BY j.next_run_at;
$$;

/*
 * fold_bookings: a booking table (one row per START or END event of an
 * order) folded into one row per order.  columns maps the roles to the
 * table's column names (defaults: order_code, product_code, machine_code,
 * event, booked_at).  Semantics (doc/pull.md):
 *  - events are taken in the order of their time, not of their arrival;
 *    at the same time a START comes before an END;
 *  - exact duplicates (same order, event and time) count once;
 *  - start is the first START, end the last END, but only when the last
 *    event is an END; an order whose last event is a START is running and
 *    has no end (also after interruptions: START END START);
 *  - an order with END events only (its START not yet arrived) has no
 *    start; a later pull fills it in;
 *  - product and machine are those of the latest event that names them;
 *  - interruptions counts the STARTs that follow an END;
 *  - rows with another event (or NULL order or time) are not orders' events
 *    and are left out.
 */
CREATE FUNCTION mfgsync.fold_bookings(bookings regclass, columns jsonb DEFAULT '{}')
RETURNS TABLE (order_code text, product_code text, machine_code text,
               start timestamptz, "end" timestamptz, running boolean,
               interruptions integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c jsonb := jsonb_build_object('order_code', 'order_code', 'product_code', 'product_code',
                                  'machine_code', 'machine_code', 'event', 'event',
                                  'booked_at', 'booked_at') || coalesce(columns, '{}');
    k text;
BEGIN
    FOR k IN SELECT jsonb_object_keys(c) LOOP
        IF k NOT IN ('order_code', 'product_code', 'machine_code', 'event', 'booked_at') THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('unknown booking column role "%s"', k),
                HINT = 'Valid roles are: order_code, product_code, machine_code, event, booked_at.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = bookings AND a.attname = c ->> k
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('column "%s" (%s) does not exist in "%s"', c ->> k, k, bookings),
                HINT = 'Map the roles to the booking table''s columns with the columns argument, e.g. {"event": "booking_type"}.';
        END IF;
    END LOOP;
    RETURN QUERY EXECUTE format($q$
        WITH ev AS (
            SELECT DISTINCT CAST(b.%1$I AS text) AS o, CAST(b.%2$I AS text) AS p,
                   CAST(b.%3$I AS text) AS m, upper(btrim(CAST(b.%4$I AS text))) AS e,
                   CAST(b.%5$I AS timestamptz) AS at
              FROM %6$s AS b
             WHERE b.%1$I IS NOT NULL AND b.%5$I IS NOT NULL
               AND upper(btrim(CAST(b.%4$I AS text))) IN ('START', 'END')
        ), seq AS (
            SELECT ev.*,
                   lag(ev.e) OVER w AS prev,
                   last_value(ev.e) OVER (PARTITION BY ev.o ORDER BY ev.at, ev.e DESC
                                          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last_e
              FROM ev
            WINDOW w AS (PARTITION BY ev.o ORDER BY ev.at, ev.e DESC)
        )
        SELECT s.o,
               (array_agg(s.p ORDER BY s.at DESC, s.e) FILTER (WHERE s.p IS NOT NULL))[1],
               (array_agg(s.m ORDER BY s.at DESC, s.e) FILTER (WHERE s.m IS NOT NULL))[1],
               min(s.at) FILTER (WHERE s.e = 'START'),
               CASE WHEN min(s.last_e) = 'END' THEN max(s.at) FILTER (WHERE s.e = 'END') END,
               min(s.last_e) = 'START',
               (count(*) FILTER (WHERE s.e = 'START' AND s.prev = 'END'))::integer
          FROM seq s
         GROUP BY s.o$q$,
        c ->> 'order_code', c ->> 'product_code', c ->> 'machine_code',
        c ->> 'event', c ->> 'booked_at', bookings);
END
$$;
COMMENT ON FUNCTION mfgsync.fold_bookings(regclass, jsonb) IS
    'Fold a booking table (START/END events per order) into one row per order';

/*
 * Privileges.  The management and run functions run as their caller, so
 * mfgsync_admin gets the rights on the job tables they write; the source
 * and target are reached with the caller's own privileges.
 */
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'pull_source_columns(text)', 'pull_notify_launcher()', 'pull_options(jsonb, regclass)',
        'pull_plan(mfgsync.pull_job)', 'pull_validate(mfgsync.pull_job)',
        'pull_job_by_name(text)', 'pull_source_relation(text)',
        'pull_read_sql(mfgsync.pull_job, text, text, boolean)', 'pull_explain(text, boolean)', 'pull_execute(integer, bigint, boolean)',
        'pull_begin(integer, text)', 'pull_scheduled(integer, bigint)',
        'pull_failed(integer, bigint, text, text)', 'pull_due()',
        'create_pull(text, text, regclass, text[], text, interval, boolean, jsonb)',
        'pull_create(text, text, regclass, text[], text, interval, boolean, jsonb, text)',
        'alter_pull(text, jsonb)', 'pull_alter(text, jsonb, text)', 'drop_pull(text)', 'run_pull(text, boolean)'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION mfgsync.%s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION mfgsync.%s TO mfgsync_admin', f);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON mfgsync.pull_job, mfgsync.pull_run TO mfgsync_admin;
GRANT USAGE ON SEQUENCE mfgsync.pull_job_id_seq, mfgsync.pull_run_id_seq TO mfgsync_admin;
GRANT SELECT ON mfgsync.pull_runs, mfgsync.pull_jobs TO mfgsync_monitor;
