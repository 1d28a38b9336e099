
/*
 * Inbound B2MML (src/b2mml_in.c, doc/b2mml_inbound.md).
 *
 * receive_b2mml applies messages from an MES to staging tables through
 * mappings: one per B2MML element (ProductionResponse, SegmentResponse,
 * ProductionRequest, SegmentRequirement, MaterialDefinition), each naming a
 * table, the column each value goes to (column -> path inside the element)
 * and the key the rows are upserted on.  Every message and its answer is
 * kept in inbound_message; an accepted message's key is unique there, which
 * is what makes a replayed message change nothing.
 */
CREATE TABLE mfgsync.inbound_mapping (
    element          text        PRIMARY KEY CHECK (element IN
                         ('ProductionResponse', 'SegmentResponse', 'ProductionRequest',
                          'SegmentRequirement', 'MaterialDefinition')),
    target           regclass    NOT NULL,
    columns          jsonb       NOT NULL,
    key_columns      text[]      NOT NULL,
    cancelled_column text,
    owner            regrole     NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mfgsync.inbound_mapping IS
    'Where receive_b2mml writes each B2MML element (managed by map_inbound)';

/*
 * A mapping is owned by whoever declared it, who must be allowed to do what
 * receive_b2mml (SECURITY DEFINER) then does to the table on its behalf;
 * receive_b2mml checks the owner's rights again at every message.
 */
CREATE FUNCTION mfgsync.inbound_mapping_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    privileges text := CASE WHEN NEW.element = 'MaterialDefinition' THEN 'SELECT'
                            ELSE 'SELECT, INSERT, UPDATE, DELETE' END;
BEGIN
    NEW.owner := current_user::regrole;
    IF NOT has_table_privilege(current_user, NEW.target, privileges) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied for table %s', NEW.target),
            DETAIL = format('Mapping %s needs %s on it.', NEW.element, privileges);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER inbound_mapping_owner BEFORE INSERT OR UPDATE ON mfgsync.inbound_mapping
    FOR EACH ROW EXECUTE FUNCTION mfgsync.inbound_mapping_owner();

CREATE TABLE mfgsync.inbound_message (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key    text,
    message_type text,
    sender       text,
    status       text        NOT NULL CHECK (status IN ('Accepted', 'Rejected')),
    description  text,
    answer       text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
-- a key is taken once, by the message that was accepted
CREATE UNIQUE INDEX inbound_message_dedup_key
    ON mfgsync.inbound_message (dedup_key) WHERE status = 'Accepted';
CREATE INDEX inbound_message_received_at ON mfgsync.inbound_message (received_at);
COMMENT ON TABLE mfgsync.inbound_message IS
    'Every message receive_b2mml answered, with the answer (replays get it again)';

CREATE FUNCTION mfgsync.check_inbound_path(element text, path text)
RETURNS void
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'mfgsync_check_inbound_path';

CREATE FUNCTION mfgsync.map_inbound(element text, target regclass, columns jsonb,
                                    key_columns text[] DEFAULT NULL,
                                    cancelled_column text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col text;
    path text;
    att record;
    keys text[] := key_columns;
    id_column text;
BEGIN
    IF element IS NULL OR element NOT IN ('ProductionResponse', 'SegmentResponse',
            'ProductionRequest', 'SegmentRequirement', 'MaterialDefinition') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid inbound element "%s"', element),
            HINT = 'Valid elements are: ProductionResponse, SegmentResponse, ProductionRequest, SegmentRequirement, MaterialDefinition.';
    END IF;
    IF target IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class c
            WHERE c.oid = target AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}')) THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('"%s" is not a table', target);
    END IF;
    IF columns IS NULL OR jsonb_typeof(columns) <> 'object' OR columns = '{}' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'columns must be a non-empty JSON object',
            HINT = 'Map each column to a path in the element, e.g. {"order_code": "ProductionRequestID", "response_id": "ID"}.';
    END IF;
    FOR col, path IN SELECT e.key, e.value FROM jsonb_each(columns) e LOOP
        IF jsonb_typeof(columns -> col) <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('the path of column "%s" must be a JSON string', col);
        END IF;
        path := columns ->> col;
        SELECT a.attname, a.attgenerated, a.attidentity INTO att FROM pg_attribute a
         WHERE a.attrelid = target AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                MESSAGE = format('column "%s" of relation %s does not exist', col, target);
        END IF;
        IF att.attgenerated <> '' OR att.attidentity = 'a' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('column "%s" of relation %s cannot be written', col, target),
                DETAIL = 'It is a generated or GENERATED ALWAYS identity column.';
        END IF;
        PERFORM mfgsync.check_inbound_path(element, path);
        IF path = 'ID' THEN
            id_column := col;
        END IF;
    END LOOP;

    IF keys IS NULL THEN
        SELECT array_agg(a.attname::text ORDER BY k.i) INTO keys
          FROM pg_index x
          CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, i)
          JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
         WHERE x.indrelid = target AND x.indisprimary;
        IF keys IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('table %s has no primary key', target),
                HINT = 'Give key_columns, covered by a unique index.';
        END IF;
    END IF;
    IF cardinality(keys) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'key_columns must name at least one column';
    END IF;
    FOREACH col IN ARRAY keys LOOP
        IF NOT columns ? col THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('key column "%s" is not mapped', col),
                HINT = 'Every key column needs a path in columns, e.g. "ID".';
        END IF;
    END LOOP;
    -- upserts need ON CONFLICT (keys): a unique index on exactly these columns
    IF NOT EXISTS (
        SELECT 1 FROM pg_index x
         WHERE x.indrelid = target AND x.indisunique AND x.indpred IS NULL
           AND x.indexprs IS NULL AND x.indnkeyatts = cardinality(keys)
           AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
                  FROM unnest(x.indkey[0:x.indnkeyatts - 1]) k(attnum)
                  JOIN pg_attribute a ON a.attrelid = target AND a.attnum = k.attnum)
               = (SELECT array_agg(k ORDER BY k) FROM unnest(keys) k)) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('no unique index on (%s) of table %s', array_to_string(keys, ', '), target),
            HINT = 'The key columns need a primary key or unique index, without a predicate, on exactly them.';
    END IF;
    IF element = 'MaterialDefinition' THEN
        IF id_column IS NULL OR keys <> ARRAY[id_column] THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'the key of a MaterialDefinition mapping must be the one column mapped to "ID"';
        END IF;
        IF cancelled_column IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'a MaterialDefinition mapping takes no cancelled_column',
                DETAIL = 'receive_b2mml only reads the material table.';
        END IF;
    END IF;
    IF cancelled_column IS NOT NULL THEN
        IF columns ? cancelled_column THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('cancelled_column "%s" is also mapped to a path', cancelled_column);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = target AND a.attname = cancelled_column
                  AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'boolean'::regtype) THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('cancelled_column "%s" is not a boolean column of %s', cancelled_column, target);
        END IF;
    END IF;

    INSERT INTO mfgsync.inbound_mapping AS m
        (element, target, columns, key_columns, cancelled_column, owner)
    VALUES (element, target, columns, keys, cancelled_column, current_user::regrole)
    ON CONFLICT ON CONSTRAINT inbound_mapping_pkey DO UPDATE
       SET target = EXCLUDED.target, columns = EXCLUDED.columns,
           key_columns = EXCLUDED.key_columns,
           cancelled_column = EXCLUDED.cancelled_column,
           owner = EXCLUDED.owner, updated_at = now();
END
$$;
COMMENT ON FUNCTION mfgsync.map_inbound(text, regclass, jsonb, text[], text) IS
    'Declare (or change) where receive_b2mml writes a B2MML element';

CREATE FUNCTION mfgsync.unmap_inbound(element text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM mfgsync.inbound_mapping m WHERE m.element = unmap_inbound.element;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('no inbound mapping for "%s"', element);
    END IF;
END
$$;
COMMENT ON FUNCTION mfgsync.unmap_inbound(text) IS
    'Remove the inbound mapping of a B2MML element';

CREATE FUNCTION mfgsync.receive_b2mml(message text)
RETURNS text
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mfgsync_receive_b2mml';
COMMENT ON FUNCTION mfgsync.receive_b2mml(text) IS
    'Apply an inbound B2MML message (XML or JSON) and return its ConfirmBOD';

CREATE VIEW mfgsync.inbound_mappings AS
SELECT element, target, columns, key_columns, cancelled_column, owner, updated_at
  FROM mfgsync.inbound_mapping;
COMMENT ON VIEW mfgsync.inbound_mappings IS 'Where receive_b2mml writes each B2MML element';

CREATE VIEW mfgsync.inbound_messages AS
SELECT id, message_type, sender, dedup_key, status, description, received_at
  FROM mfgsync.inbound_message;
COMMENT ON VIEW mfgsync.inbound_messages IS
    'Messages receive_b2mml answered, without the answers';

GRANT SELECT ON mfgsync.inbound_mappings, mfgsync.inbound_messages TO mfgsync_monitor;
GRANT SELECT ON mfgsync.inbound_message TO mfgsync_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON mfgsync.inbound_mapping TO mfgsync_admin;
REVOKE ALL ON FUNCTION mfgsync.inbound_mapping_owner() FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.receive_b2mml(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfgsync.receive_b2mml(text) TO mfgsync_admin;
REVOKE ALL ON FUNCTION mfgsync.map_inbound(text, regclass, jsonb, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfgsync.map_inbound(text, regclass, jsonb, text[], text) TO mfgsync_admin;
REVOKE ALL ON FUNCTION mfgsync.unmap_inbound(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfgsync.unmap_inbound(text) TO mfgsync_admin;
