
/*
 * B2MML (ISA-95) outbound: how a subscription's events become B2MML
 * documents (src/b2mml.c, doc/b2mml.md).
 *
 * A subscription of a "b2mml" endpoint without a row here sends
 * SyncProductionSchedule with the canonical order table's mapping.  A row
 * chooses the document (ProductionSchedule or ProductionPerformance) and
 * either an explicit mapping {"payload field": "target", ...} or a hook
 * function (event mfgsync.events) RETURNS xml that builds the nouns.
 */
CREATE TABLE mfgsync.b2mml_mapping (
    endpoint_id      integer     NOT NULL,
    message_type     text        NOT NULL,
    document         text        NOT NULL
                     CHECK (document IN ('ProductionSchedule', 'ProductionPerformance')),
    mapping          jsonb,      -- NULL: the defaults (or the hook)
    hook             regprocedure,
    cancel_on_delete boolean     NOT NULL DEFAULT true, -- performance: Delete -> Cancel
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, message_type),
    FOREIGN KEY (endpoint_id, message_type)
        REFERENCES mfgsync.subscription (endpoint_id, message_type) ON DELETE CASCADE,
    CHECK (mapping IS NULL OR hook IS NULL)
);
COMMENT ON TABLE mfgsync.b2mml_mapping IS
    'How the events of a subscription of a B2MML endpoint become documents';
SELECT pg_catalog.pg_extension_config_dump('mfgsync.b2mml_mapping', '');

CREATE FUNCTION mfgsync.b2mml_targets(document text)
RETURNS SETOF text
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'mfgsync_b2mml_targets';
COMMENT ON FUNCTION mfgsync.b2mml_targets(text) IS
    'The B2MML targets a mapping of this document may name';

/*
 * b2mml_map
 *		Set how the events of one subscription become B2MML: the document,
 *		and a mapping or a hook (not both; neither = the defaults).
 */
CREATE FUNCTION mfgsync.b2mml_map(endpoint text, message_type text,
                                  document text DEFAULT 'ProductionSchedule',
                                  mapping jsonb DEFAULT NULL,
                                  hook regprocedure DEFAULT NULL,
                                  cancel_on_delete boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep mfgsync.endpoint;
    fields text[];
    field text;
    target text;
    seen text[] := '{}';
    valid text[];
    p pg_proc;
BEGIN
    SELECT * INTO ep FROM mfgsync.endpoint e WHERE e.id = mfgsync.endpoint_id(endpoint);
    IF ep.format <> 'b2mml' THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = format('endpoint "%s" does not have format "b2mml"', endpoint);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM mfgsync.subscription s
                    WHERE s.endpoint_id = ep.id AND s.message_type = b2mml_map.message_type) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('endpoint "%s" is not subscribed to message type "%s"', endpoint, message_type),
            HINT = 'Call mfgsync.subscribe() first; a mapping belongs to a subscription.';
    END IF;
    IF document IS NULL OR document NOT IN ('ProductionSchedule', 'ProductionPerformance') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid B2MML document "%s"', document),
            HINT = 'Valid documents are: ProductionSchedule, ProductionPerformance.';
    END IF;
    IF mapping IS NOT NULL AND hook IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'a B2MML mapping takes a field mapping or a hook, not both';
    END IF;

    IF mapping IS NOT NULL THEN
        IF jsonb_typeof(mapping) <> 'object' OR mapping = '{}' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'a B2MML mapping must be a non-empty JSON object',
                DETAIL = 'It maps payload fields to B2MML targets, as in {"order_code": "ProductionRequestID"}.';
        END IF;
        /* the payload fields of the message type: the tracked tables' domain names */
        SELECT array_agg(DISTINCT c.value) INTO fields
          FROM mfgsync.tracked_tables t, jsonb_each_text(t.columns) c
         WHERE t.message_type = b2mml_map.message_type;
        valid := ARRAY(SELECT mfgsync.b2mml_targets(document));
        FOR field, target IN SELECT m.key, m.value #>> '{}' FROM jsonb_each(mapping) m LOOP
            IF NOT field = ANY (fields) THEN
                RAISE EXCEPTION USING ERRCODE = 'undefined_column',
                    MESSAGE = format('message type "%s" has no field "%s"', message_type, field),
                    HINT = format('Its fields are: %s.', array_to_string(fields, ', '));
            END IF;
            IF jsonb_typeof(mapping -> field) <> 'string' OR NOT target = ANY (valid) THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('invalid B2MML target for field "%s": %s', field, mapping -> field),
                    HINT = format('Targets of %s are: %s.', document, array_to_string(valid, ', '));
            END IF;
            IF target = ANY (seen) THEN
                RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
                    MESSAGE = format('B2MML target "%s" is mapped from more than one field', target);
            END IF;
            seen := seen || target;
        END LOOP;
    END IF;

    IF hook IS NOT NULL THEN
        SELECT * INTO p FROM pg_proc WHERE oid = hook;
        IF p.pronargs <> 1 OR p.proargtypes[0] <> 'mfgsync.events'::regtype
           OR p.prorettype <> 'xml'::regtype OR p.proretset OR p.prokind <> 'f' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_function_definition',
                MESSAGE = format('B2MML hook %s must take one mfgsync.events argument and return xml', hook),
                HINT = format('Declare it as CREATE FUNCTION ...(event mfgsync.events) RETURNS xml; it returns the %s elements.', document);
        END IF;
        /* hooks run as the endpoint's owner, like filters */
        IF NOT pg_has_role(session_user, ep.owner, 'MEMBER') THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('only the owner of endpoint "%s" can set a B2MML hook', endpoint),
                DETAIL = format('Hooks run with the privileges of the endpoint''s owner, %s.', ep.owner);
        END IF;
        IF NOT has_function_privilege(ep.owner::oid, hook, 'EXECUTE') THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('owner %s of endpoint "%s" may not execute %s', ep.owner, endpoint, hook);
        END IF;
    END IF;

    INSERT INTO mfgsync.b2mml_mapping AS m (endpoint_id, message_type, document, mapping, hook,
                                            cancel_on_delete)
    VALUES (ep.id, message_type, document, mapping, hook, coalesce(cancel_on_delete, true))
    ON CONFLICT ON CONSTRAINT b2mml_mapping_pkey DO UPDATE
       SET document = EXCLUDED.document, mapping = EXCLUDED.mapping, hook = EXCLUDED.hook,
           cancel_on_delete = EXCLUDED.cancel_on_delete, updated_at = now();
    PERFORM mfgsync.notify_senders();
END
$$;
COMMENT ON FUNCTION mfgsync.b2mml_map(text, text, text, jsonb, regprocedure, boolean) IS
    'Set how a B2MML endpoint''s subscription renders its events (document, mapping or hook)';

CREATE VIEW mfgsync.b2mml_mappings AS
SELECT e.name AS endpoint, s.message_type,
       coalesce(m.document, 'ProductionSchedule') AS document,
       m.mapping, m.hook, coalesce(m.cancel_on_delete, true) AS cancel_on_delete,
       (m.mapping IS NULL AND m.hook IS NULL) AS defaults
  FROM mfgsync.endpoint e
  JOIN mfgsync.subscription s ON s.endpoint_id = e.id
  LEFT JOIN mfgsync.b2mml_mapping m
         ON m.endpoint_id = s.endpoint_id AND m.message_type = s.message_type
 WHERE e.format = 'b2mml';
COMMENT ON VIEW mfgsync.b2mml_mappings IS
    'Subscriptions of B2MML endpoints with their document and mapping';

CREATE FUNCTION mfgsync.b2mml_render(event_id bigint, endpoint text)
RETURNS text
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mfgsync_b2mml_render';
COMMENT ON FUNCTION mfgsync.b2mml_render(bigint, text) IS
    'The exact B2MML document the endpoint receives for the event';

CREATE FUNCTION mfgsync.b2mml_confirm(message text)
RETURNS boolean
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mfgsync_b2mml_confirm';
COMMENT ON FUNCTION mfgsync.b2mml_confirm(text) IS
    'Settle the message a late ConfirmBOD (XML or JSON) answers; false if it names none';

CREATE FUNCTION mfgsync.b2mml_convert(message text, dialect text)
RETURNS text
LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'mfgsync_b2mml_convert';
COMMENT ON FUNCTION mfgsync.b2mml_convert(text, text) IS
    'A B2MML message (XML or JSON) in another dialect: xml, json-mesa or json-edinn';

/* the webhook envelope of an event: a preview, and test/bench/b2mml.sh's baseline */
CREATE FUNCTION mfgsync.webhook_render(event_id bigint)
RETURNS text
LANGUAGE C STRICT VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'mfgsync_webhook_render';
COMMENT ON FUNCTION mfgsync.webhook_render(bigint) IS
    'The plain webhook envelope of an event';

GRANT SELECT ON mfgsync.b2mml_mappings TO mfgsync_monitor;
REVOKE ALL ON FUNCTION mfgsync.webhook_render(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfgsync.webhook_render(bigint) TO mfgsync_admin;
REVOKE ALL ON FUNCTION mfgsync.b2mml_map(text, text, text, jsonb, regprocedure, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.b2mml_render(bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mfgsync.b2mml_confirm(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mfgsync.b2mml_map(text, text, text, jsonb, regprocedure, boolean) TO mfgsync_admin;
GRANT EXECUTE ON FUNCTION mfgsync.b2mml_render(bigint, text) TO mfgsync_admin;
GRANT EXECUTE ON FUNCTION mfgsync.b2mml_confirm(text) TO mfgsync_admin;
