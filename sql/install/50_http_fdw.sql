
/*
 * The mfgsync_http foreign-data wrapper (src/http_fdw*.c): foreign tables
 * over REST/JSON APIs.  doc/http_fdw.md describes its options.
 */
CREATE FUNCTION mfgsync.http_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'mfgsync_http_fdw_handler'
LANGUAGE C STRICT;
COMMENT ON FUNCTION mfgsync.http_fdw_handler() IS
    'Handler of the mfgsync_http foreign-data wrapper';

CREATE FUNCTION mfgsync.http_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'mfgsync_http_fdw_validator'
LANGUAGE C STRICT;
COMMENT ON FUNCTION mfgsync.http_fdw_validator(text[], oid) IS
    'Option validator of the mfgsync_http foreign-data wrapper';

CREATE FOREIGN DATA WRAPPER mfgsync_http
    HANDLER mfgsync.http_fdw_handler
    VALIDATOR mfgsync.http_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER mfgsync_http IS
    'Foreign tables over REST/JSON APIs (MES, ERP, PLM)';
GRANT USAGE ON FOREIGN DATA WRAPPER mfgsync_http TO mfgsync_admin;

CREATE FUNCTION mfgsync.http_budget_spent(server text)
RETURNS integer
AS 'MODULE_PATHNAME', 'mfgsync_http_budget_spent'
LANGUAGE C STRICT;
COMMENT ON FUNCTION mfgsync.http_budget_spent(text) IS
    'Requests counted today (UTC) against a mfgsync_http server''s daily_budget';
