--
-- http_fdw: the mfgsync_http wrapper's options are checked per catalog
-- (no network: nothing here makes a request)
--
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc
  FROM pg_foreign_data_wrapper WHERE fdwname = 'mfgsync_http';
-- wrapper: no options
ALTER FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url 'http://x');
-- server
CREATE SERVER api FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url 'http://127.0.0.1:9/api', timeout '5000', rate_limit '10000/24h',
           daily_budget '10000', headers '{"Accept-Language": "de"}', retries '2');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url 'file:///etc/passwd');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url 'gopher://x/');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url 'not a url');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (api_key 'secret');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (timeout 'soon');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (timeout '0');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (rate_limit 'fast');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (rate_limit '0/s');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (headers '{"X-A": 1}');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (headers '{"X-A": "a\nInjected: 1"}');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (resources '[1]');
CREATE SERVER bad FOREIGN DATA WRAPPER mfgsync_http OPTIONS (pagination 'pages');
ALTER SERVER api OPTIONS (SET rate_limit '5 per 2 s');
ALTER SERVER api OPTIONS (ADD pagination 'page', ADD page_size '500');
-- user mapping: the only place for credentials
CREATE USER MAPPING FOR CURRENT_USER SERVER api OPTIONS (base_url 'http://x');
CREATE USER MAPPING FOR CURRENT_USER SERVER api OPTIONS (api_key 'k', bearer_token 'b');
CREATE USER MAPPING FOR CURRENT_USER SERVER api OPTIONS (username 'u');
CREATE USER MAPPING FOR CURRENT_USER SERVER api OPTIONS (client_id 'c');
CREATE USER MAPPING FOR CURRENT_USER SERVER api OPTIONS (token_url 'http://127.0.0.1:9/token');
CREATE USER MAPPING FOR CURRENT_USER SERVER api
  OPTIONS (token_url 'ftp://127.0.0.1/token', client_id 'c');
CREATE USER MAPPING FOR CURRENT_USER SERVER api
  OPTIONS (token_url 'http://127.0.0.1:9/token', client_id 'c', oauth2_grant 'implicit');
CREATE USER MAPPING FOR CURRENT_USER SERVER api
  OPTIONS (api_key 'k', api_key_header 'X Key');
CREATE USER MAPPING FOR CURRENT_USER SERVER api
  OPTIONS (api_key 'k', api_key_header 'X-Key', api_key_param 'key');
-- an Infor ION .ionapi file: pu + ot, ci, cs, saak, sask
CREATE USER MAPPING FOR CURRENT_USER SERVER api
  OPTIONS (token_url 'https://mingle-sso.example.com/TENANT/as/token.oauth2',
           client_id 'TENANT~ci', client_secret 'cs', oauth2_grant 'password',
           client_auth 'body', username 'TENANT#saak', password 'sask');
-- the secrets are not readable by others
CREATE ROLE http_fdw_other;
SET ROLE http_fdw_other;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname = 'api';
RESET ROLE;
DROP ROLE http_fdw_other;
-- foreign table
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (base_url 'http://x');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (password 'x');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (path 'orders');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (rows 'data..items');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (rows 'data[x]');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (pagination 'cursor');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (pagination 'next_url');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (page_size '-1');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (max_page_bytes '10');
CREATE FOREIGN TABLE t_bad (a int) SERVER api OPTIONS (params 'a=b c');
-- column
CREATE FOREIGN TABLE t_bad (a int OPTIONS (rows 'x')) SERVER api;
CREATE FOREIGN TABLE t_bad (a int OPTIONS (path '')) SERVER api;
CREATE FOREIGN TABLE t_bad (a int OPTIONS (param '')) SERVER api;
CREATE FOREIGN TABLE orders (
    code text OPTIONS (path 'order_code', param 'code'),
    machine text OPTIONS (path '$.ops[0].machine'),
    updated_at timestamptz OPTIONS (param_ge 'updated_since', param_gt 'updated_after',
                                    param_lt 'updated_before', param_le 'updated_until'),
    doc jsonb OPTIONS (path '$')
) SERVER api OPTIONS (path '/orders', rows '$.data.items', pagination 'cursor',
                      cursor_path 'meta.next', cursor_param 'after', max_pages '10');
-- EXPLAIN needs no request: it shows the first one and what is pushed
EXPLAIN (VERBOSE, COSTS OFF)
SELECT code FROM orders
 WHERE code IN ('A', 'B') AND updated_at >= '2024-05-01 00:00:00+00' AND machine = 'M1';
EXPLAIN (VERBOSE, COSTS OFF) SELECT code FROM orders WHERE code = 'A' LIMIT 5;
-- the API key parameter is shown redacted
CREATE SERVER api2 FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url 'http://127.0.0.1:9', api_key_param 'apikey', retries '0');
CREATE USER MAPPING FOR CURRENT_USER SERVER api2 OPTIONS (api_key 'very-secret');
CREATE FOREIGN TABLE t2 (a int) SERVER api2 OPTIONS (path '/t');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM t2;
-- a server without base_url fails at planning
CREATE SERVER nourl FOREIGN DATA WRAPPER mfgsync_http;
CREATE FOREIGN TABLE t3 (a int) SERVER nourl;
SELECT * FROM t3;
-- nothing listens on port 9: the error names the request, not the key
DO $$
DECLARE
    msg text;
    ctx text;
BEGIN
    PERFORM * FROM t2;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
    RAISE NOTICE 'sqlstate %, starts %, secret in message %, context %', SQLSTATE,
        left(msg, 36), strpos(msg || ctx, 'very-secret') > 0, split_part(ctx, E'\n', 1);
END
$$;
-- IMPORT FOREIGN SCHEMA needs declared resources
CREATE SCHEMA imp;
IMPORT FOREIGN SCHEMA resources FROM SERVER api INTO imp;
ALTER SERVER api OPTIONS (ADD resources '{"orders": "/orders"}');
IMPORT FOREIGN SCHEMA public FROM SERVER api INTO imp;
SELECT mfgsync.http_budget_spent('api');
SELECT mfgsync.http_budget_spent('nope');
DROP SCHEMA imp;
DROP SERVER api, api2, nourl CASCADE;
