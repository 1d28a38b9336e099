--
-- install: the extension and what it is made of
--
CREATE EXTENSION mfgsync;

SELECT e.extversion, e.extrelocatable, e.extnamespace::regnamespace AS schema
  FROM pg_extension e WHERE e.extname = 'mfgsync';

-- every member object
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS member
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mfgsync')
   AND d.deptype = 'e'
 ORDER BY 1;

-- a second CREATE EXTENSION is refused
CREATE EXTENSION mfgsync;

-- the library is loaded by the postmaster
SHOW shared_preload_libraries;

-- helper for the tests that follow: run a command, show its error
-- (SQLSTATE, message, detail and hint) or 'ok'
CREATE FUNCTION try(command text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    state text; msg text; detail text; hint text;
BEGIN
    EXECUTE command;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg
        || CASE WHEN detail <> '' THEN E'\nDETAIL: ' || detail ELSE '' END
        || CASE WHEN hint <> '' THEN E'\nHINT: ' || hint ELSE '' END;
END
$$;

-- helper for the tests that follow: return and remove the captured events
CREATE FUNCTION take_events(
    OUT action text, OUT message_type text,
    OUT key jsonb, OUT data jsonb, OUT old_data jsonb)
RETURNS SETOF record
LANGUAGE sql
AS $$
    WITH taken AS (DELETE FROM mfgsync.outbox RETURNING *)
    SELECT action, message_type, key::jsonb, data::jsonb, old_data::jsonb
      FROM taken ORDER BY id
$$;
