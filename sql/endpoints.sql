--
-- endpoints: endpoints, subscriptions, replay and retire, with every bad
-- input and who may do what.
--
-- The senders run in this database.  Every endpoint points at the discard
-- port, where nothing listens, and is paused (in the transaction that
-- creates it) before events of its message types exist, so nothing is sent
-- and no output depends on the senders' timing.
--

CREATE TABLE ep_order (id int PRIMARY KEY, machine text, qty int);
CREATE TABLE ep_line (id int PRIMARY KEY, state text);
SELECT mfgsync.track('ep_order', 'RegressOrder');
SELECT mfgsync.track('ep_line', 'RegressLine');

-- create: the id is new; options come back with their defaults filled in
SELECT mfgsync.create_endpoint('plain', 'http://127.0.0.1:9/plain') > 0 AS created;
BEGIN;
SELECT mfgsync.create_endpoint('signed', 'http://127.0.0.1:9/signed', 'webhook',
    '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      "headers": {"X-Plant": "P1"}, "timeout_ms": 2000,
      "envelope": "cloudevents", "batch_size": 50}') > 0 AS created;
SELECT mfgsync.pause_endpoint('signed');
COMMIT;
SELECT name, url, format, signed, paused, message_types,
       owner::text = session_user AS owned_by_session_user
  FROM mfgsync.endpoints ORDER BY name;
SELECT name, o.key, o.value
  FROM mfgsync.endpoints, jsonb_each(options) AS o ORDER BY name, o.key;
-- the secret is in endpoint_secret only: not in any column of the view,
-- nor in the stored options
SELECT bool_or(e::text LIKE '%whsec%') AS in_view FROM mfgsync.endpoints e;
SELECT bool_or(e.options::text LIKE '%whsec%') AS in_options,
       bool_or(e.options ? 'secret' OR e.options ? 'previous_secret') AS keys
  FROM mfgsync.endpoint e;
SELECT e.name, s.secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' AS secret,
       s.previous_secret
  FROM mfgsync.endpoint_secret s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id;
-- integers are stored as the senders read them
SELECT mfgsync.endpoint_options('webhook', '{"timeout_ms": 1.0, "concurrency": 1e1}')
       -> 'timeout_ms' AS timeout_ms,
       mfgsync.endpoint_options('webhook', '{"timeout_ms": 1.0, "concurrency": 1e1}')
       -> 'concurrency' AS concurrency;

\pset format unaligned
\pset tuples_only on
-- names
SELECT try($$SELECT mfgsync.create_endpoint(NULL, 'http://127.0.0.1:9/')$$);
SELECT try($$SELECT mfgsync.create_endpoint('', 'http://127.0.0.1:9/')$$);
SELECT try($$SELECT mfgsync.create_endpoint('has space', 'http://127.0.0.1:9/')$$);
SELECT try($$SELECT mfgsync.create_endpoint('a/b', 'http://127.0.0.1:9/')$$);
SELECT try($$SELECT mfgsync.create_endpoint(repeat('a', 64), 'http://127.0.0.1:9/')$$);
SELECT try($$SELECT mfgsync.create_endpoint('plain', 'http://127.0.0.1:9/')$$);

-- URLs: http and https only, without user information, spaces or fragment
SELECT try($$SELECT mfgsync.create_endpoint('x', 'file:///etc/passwd')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'gopher://x')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'ftp://')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://user:pw@host/')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', NULL)$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/a b')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/a#top')$$);

-- formats
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'json')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', NULL)$$);
-- format b2mml is accepted (sql/b2mml_render.sql tests it); its options apply to it only
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', '{"dialect": "xml"}')$$);

-- options
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', NULL)$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', '[]')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', '"x"')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"timeout": 1000}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"timeout_ms": "1000"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"timeout_ms": 1.5}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"timeout_ms": -1}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"connect_timeout_ms": -5000}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"concurrency": 0}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"concurrency": 100000}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"follow_redirects": "yes"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"envelope": "soap"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"envelope": 1}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"source": ""}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"ca_file": "certs/ca.pem"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"retry_initial_ms": 5000, "retry_max_ms": 1000}')$$);

-- secrets: "whsec_" and the base64 of 24 to 64 bytes
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": "whsec_c2hvcnQ="}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": "whsec_abc"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": "whsec_not base64 at all, not even close!"}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}')$$);
SELECT try(format($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": "whsec_%s"}')$$, repeat('A', 88)));
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"secret": 42}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"previous_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}')$$);

-- headers
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": ["X-Plant"]}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"X Plant": "P1"}}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"X-Plant:": "P1"}}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"Content-Type": "text/plain"}}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"webhook-signature": "v1,forged"}}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"X-Plant": "P1\r\nX-Injected: 1"}}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook',
    '{"headers": {"X-Plant": 1}}')$$);
\pset format aligned
\pset tuples_only off
-- none of them was created
SELECT name FROM mfgsync.endpoints ORDER BY name;

-- alter_endpoint
SELECT mfgsync.alter_endpoint('signed', '{"timeout_ms": 3000}');
SELECT options -> 'timeout_ms' AS timeout_ms, options -> 'envelope' AS envelope,
       options -> 'headers' AS headers, signed
  FROM mfgsync.endpoints WHERE name = 'signed';
-- a null removes an option: the default comes back, the secret goes
SELECT mfgsync.alter_endpoint('signed', '{"timeout_ms": null, "secret": null}');
SELECT options -> 'timeout_ms' AS timeout_ms, signed
  FROM mfgsync.endpoints WHERE name = 'signed';
SELECT count(*) FROM mfgsync.endpoint_secret s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id
 WHERE e.name = 'signed';
-- rotation: a new secret and the one still signed with
SELECT mfgsync.alter_endpoint('signed',
    '{"secret": "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "previous_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}');
SELECT e.name, s.secret, s.previous_secret
  FROM mfgsync.endpoint_secret s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id;
SELECT signed, options ? 'secret' OR options ? 'previous_secret' AS in_options
  FROM mfgsync.endpoints WHERE name = 'signed';
-- the URL
SELECT mfgsync.alter_endpoint('signed', '{"url": "https://127.0.0.1:9/v2/hook?plant=P1"}');
SELECT url FROM mfgsync.endpoints WHERE name = 'signed';
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"url": "gopher://127.0.0.1:9/"}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"url": "http://u@127.0.0.1:9/"}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"url": null}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"concurrency": 0}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"nope": 1}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', '{"secret": null}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('signed', NULL)$$);
SELECT try($$SELECT mfgsync.alter_endpoint('nope', '{"timeout_ms": 1000}')$$);
\pset format aligned
\pset tuples_only off
-- a failed alter changes nothing
SELECT url, options -> 'concurrency' AS concurrency, signed
  FROM mfgsync.endpoints WHERE name = 'signed';

-- pause and resume
SELECT name, paused, paused_reason LIKE 'paused by % at %' AS reason
  FROM mfgsync.endpoints ORDER BY name;
SELECT mfgsync.pause_endpoint('plain');
SELECT name, paused, paused_reason LIKE 'paused by % at %' AS reason
  FROM mfgsync.endpoints ORDER BY name;
SELECT name, paused FROM mfgsync.endpoint_status ORDER BY name;
SELECT mfgsync.resume_endpoint('plain');
SELECT name, paused, paused_reason FROM mfgsync.endpoints WHERE name = 'plain';
SELECT name, paused FROM mfgsync.endpoint_status ORDER BY name;
SELECT mfgsync.pause_endpoint('plain');
SELECT name, paused FROM mfgsync.endpoint_status ORDER BY name;
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.pause_endpoint('nope')$$);
SELECT try($$SELECT mfgsync.resume_endpoint('nope')$$);

-- subscribe
SELECT try($$SELECT mfgsync.subscribe('nope', ARRAY['RegressOrder'])$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['NoSuchType'])$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder', 'NoSuchType'])$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY[]::text[])$$);
SELECT try($$SELECT mfgsync.subscribe('signed', NULL)$$);
\pset format aligned
\pset tuples_only off
SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder']);
SELECT name, message_types FROM mfgsync.endpoints ORDER BY name;
-- subscribing again changes the filter; a type named twice is one subscription
SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder', 'RegressOrder'],
                         $$data->>'machine' = 'M1'$$);
SELECT mfgsync.subscribe('signed', ARRAY['RegressLine']);
SELECT e.name, s.message_type, s.filter
  FROM mfgsync.subscription s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id
 ORDER BY 1, 2;
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'data->>''machine'' =')$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'machine = ''M1''')$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'data->>''machine''')$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], '')$$);
-- a filter is one expression: it cannot close the parentheses around it
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'true) OR (true')$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'true); SELECT (1')$$);
SELECT try($$SELECT mfgsync.subscribe('signed', ARRAY['RegressOrder'], 'true FROM pg_class')$$);
\pset format aligned
\pset tuples_only off
-- a bad filter leaves the subscription as it was
SELECT s.message_type, s.filter
  FROM mfgsync.subscription s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id
 WHERE e.name = 'signed' ORDER BY 1;
SELECT mfgsync.unsubscribe('signed', ARRAY['RegressLine']);
SELECT name, message_types FROM mfgsync.endpoints ORDER BY name;
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.unsubscribe('nope', ARRAY['RegressLine'])$$);
\pset format aligned
\pset tuples_only off

-- replay: events written while the endpoint is paused
INSERT INTO ep_order VALUES (1, 'M1', 5), (2, 'M2', 3);
UPDATE ep_order SET qty = 6 WHERE id = 1;
INSERT INTO ep_line VALUES (1, 'running');
SELECT mfgsync.replay('signed', ARRAY(SELECT id FROM mfgsync.events
                                       WHERE message_type = 'RegressOrder'));
SELECT count(*) FROM mfgsync.retry r JOIN mfgsync.endpoint e ON e.id = r.endpoint_id
 WHERE e.name = 'signed';
-- ids that do not exist are not found; one found again is counted again
SELECT mfgsync.replay('signed', ARRAY[-1, -2]::bigint[]);
SELECT mfgsync.replay('signed', ARRAY[-1]::bigint[]
                      || (SELECT min(id) FROM mfgsync.events WHERE message_type = 'RegressOrder'));
SELECT mfgsync.replay('signed', NULL::bigint[]);
-- by time: the events of the subscribed types only
SELECT mfgsync.replay('signed', now() - interval '1 hour');
SELECT mfgsync.replay('signed', now() + interval '1 hour');
-- by key: that key's events of that type, nothing else
SELECT key, count(*) FROM mfgsync.events WHERE message_type = 'RegressOrder' GROUP BY key ORDER BY 1;
SELECT mfgsync.replay_key('signed', 'RegressOrder', '{"id": 1}');
SELECT mfgsync.replay_key('signed', 'RegressOrder', '{"id": 1}', now() + interval '1 hour');
SELECT mfgsync.replay_key('signed', 'RegressOrder', '{"id": 99}');
SELECT count(*) FROM mfgsync.retry r JOIN mfgsync.endpoint e ON e.id = r.endpoint_id
 WHERE e.name = 'signed';
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.replay('nope', ARRAY[1]::bigint[])$$);
SELECT try($$SELECT mfgsync.replay('nope', now() - interval '1 hour')$$);
SELECT try($$SELECT mfgsync.replay_key('nope', 'RegressOrder', '{"id": 1}')$$);
SELECT try($$SELECT mfgsync.replay_key('signed', 'NoSuchType', '{"id": 1}')$$);
\pset format aligned
\pset tuples_only off

-- retire: nothing is older than mfgsync.retention (7 days)
SELECT mfgsync.retire();
SELECT count(*) FROM mfgsync.events WHERE message_type IN ('RegressOrder', 'RegressLine');

-- roles
CREATE ROLE regress_mfg_admin;
CREATE ROLE regress_mfg_admin2;
CREATE ROLE regress_mfg_monitor;
CREATE ROLE regress_mfg_nobody;
GRANT mfgsync_admin TO regress_mfg_admin, regress_mfg_admin2;
GRANT mfgsync_monitor TO regress_mfg_monitor;

-- the admin role manages endpoints and reads their secrets
SET ROLE regress_mfg_admin;
BEGIN;
SELECT mfgsync.create_endpoint('by_admin', 'http://127.0.0.1:9/admin', 'webhook',
    '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}') > 0 AS created;
SELECT mfgsync.pause_endpoint('by_admin');
COMMIT;
SELECT mfgsync.alter_endpoint('by_admin', '{"timeout_ms": 1234}');
SELECT mfgsync.subscribe('by_admin', ARRAY['RegressLine'], $$data->>'state' = 'idle'$$);
-- the owner is the session user (a SET ROLE does not change it)
SELECT name, options -> 'timeout_ms' AS timeout_ms, signed, paused, message_types,
       owner::text = session_user AS owned_by_session_user
  FROM mfgsync.endpoints WHERE name = 'by_admin';
SELECT count(*) FROM mfgsync.endpoint_secret
 WHERE secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
SELECT mfgsync.drop_endpoint('by_admin');
SELECT count(*) FROM mfgsync.endpoints WHERE name = 'by_admin';
RESET ROLE;

-- the monitor role sees status, not secrets, and manages nothing
SET ROLE regress_mfg_monitor;
SELECT name, paused FROM mfgsync.endpoint_status ORDER BY name;
SELECT name, signed, message_types FROM mfgsync.endpoints ORDER BY name;
SELECT count(*) FROM mfgsync.dead_letters;
SELECT count(*) FROM mfgsync.failures;
SELECT * FROM mfgsync.endpoint_secret;
SELECT count(*) FROM mfgsync.outbox;
SELECT count(*) FROM mfgsync.events;
SELECT mfgsync.create_endpoint('by_monitor', 'http://127.0.0.1:9/monitor');
SELECT mfgsync.pause_endpoint('plain');
SELECT mfgsync.replay('signed', now() - interval '1 hour');
RESET ROLE;

-- a role without mfgsync's roles gets nothing
SET ROLE regress_mfg_nobody;
SELECT mfgsync.create_endpoint('by_nobody', 'http://127.0.0.1:9/nobody');
SELECT count(*) FROM mfgsync.endpoint_status;
RESET ROLE;

-- a filter runs with its endpoint owner's privileges: only the owner sets one
SET SESSION AUTHORIZATION regress_mfg_admin;
BEGIN;
SELECT mfgsync.create_endpoint('owned', 'http://127.0.0.1:9/owned') > 0 AS created;
SELECT mfgsync.pause_endpoint('owned');
COMMIT;
SELECT mfgsync.subscribe('owned', ARRAY['RegressOrder'], 'true');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_mfg_admin2;
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.subscribe('owned', ARRAY['RegressOrder'], 'false')$$);
\pset format aligned
\pset tuples_only off
SELECT mfgsync.subscribe('owned', ARRAY['RegressLine']);
RESET SESSION AUTHORIZATION;
SELECT name, owner, message_types FROM mfgsync.endpoints WHERE name = 'owned';
SELECT s.message_type, s.filter
  FROM mfgsync.subscription s JOIN mfgsync.endpoint e ON e.id = s.endpoint_id
 WHERE e.name = 'owned' ORDER BY 1;
SELECT mfgsync.drop_endpoint('owned');

-- workers: the endpoint's keys split into shards, each with its own position
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', '{"workers": 0}')$$);
SELECT try($$SELECT mfgsync.create_endpoint('x', 'http://127.0.0.1:9/', 'webhook', '{"workers": 17}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('plain', '{"workers": 1.5}')$$);
SELECT try($$SELECT mfgsync.alter_endpoint('plain', '{"workers": "2"}')$$);
\pset format aligned
\pset tuples_only off
SELECT mfgsync.create_endpoint('sharded', 'http://127.0.0.1:9/', 'webhook', '{"workers": 3}') > 0 AS created;
SELECT id AS sharded_id FROM mfgsync.endpoint WHERE name = 'sharded' \gset
SELECT shard, generation, high IS NULL AS no_window, delivered
  FROM mfgsync.endpoint_state WHERE endpoint_id = :sharded_id ORDER BY shard;
-- the view adds up the shards; the latest error of any shard is shown
UPDATE mfgsync.endpoint_state SET delivered = 10 * (shard + 1), failed = shard, dead = 1,
       last_status = 500 + shard, last_error = 'shard ' || shard,
       last_error_at = '2026-01-01'::timestamptz + shard * interval '1 hour',
       last_success_at = '2026-01-02'::timestamptz - shard * interval '1 hour'
 WHERE endpoint_id = :sharded_id;
SELECT delivered, failed, dead, last_status, last_error, last_error_at, last_success_at
  FROM mfgsync.endpoint_status WHERE name = 'sharded';
-- a new cut starts every shard where all old ones have been: xmin and xmax
-- the oldest, every transaction running in any of them still running
UPDATE mfgsync.endpoint_state SET low = CASE shard WHEN 0 THEN '100:110:102,105'
                                                   WHEN 1 THEN '101:108:103'
                                                   ELSE '99:120:99,105,110' END::pg_snapshot,
       high = '130:130:'::pg_snapshot, next_id = 7, last_id = 9
 WHERE endpoint_id = :sharded_id;
SELECT mfgsync.alter_endpoint('sharded', '{"workers": 2}');
SELECT shard, generation, low, high, next_id, last_id, delivered, failed, dead, last_error
  FROM mfgsync.endpoint_state WHERE endpoint_id = :sharded_id ORDER BY shard;
SELECT delivered, failed, dead, last_status, last_error
  FROM mfgsync.endpoint_status WHERE name = 'sharded';
-- other options leave the shards alone
SELECT mfgsync.alter_endpoint('sharded', '{"concurrency": 4}');
SELECT count(*), max(generation) FROM mfgsync.endpoint_state WHERE endpoint_id = :sharded_id;
SELECT mfgsync.shard_of('ProductionOrder {"order_code": "PO-1"}', 1) AS one_shard,
       mfgsync.shard_of('x', 2) BETWEEN 0 AND 1 AS in_range;
SELECT mfgsync.drop_endpoint('sharded');
SELECT count(*) FROM mfgsync.endpoint_state WHERE endpoint_id = :sharded_id;

-- drop_endpoint takes its subscriptions, state, secrets and retries along
SELECT id AS signed_id FROM mfgsync.endpoint WHERE name = 'signed' \gset
SELECT (SELECT count(*) FROM mfgsync.subscription WHERE endpoint_id = :signed_id) AS subscriptions,
       (SELECT count(*) FROM mfgsync.endpoint_state WHERE endpoint_id = :signed_id) AS state,
       (SELECT count(*) FROM mfgsync.endpoint_secret WHERE endpoint_id = :signed_id) AS secrets,
       (SELECT count(*) FROM mfgsync.retry WHERE endpoint_id = :signed_id) AS retries;
SELECT mfgsync.drop_endpoint('signed');
SELECT (SELECT count(*) FROM mfgsync.subscription WHERE endpoint_id = :signed_id) AS subscriptions,
       (SELECT count(*) FROM mfgsync.endpoint_state WHERE endpoint_id = :signed_id) AS state,
       (SELECT count(*) FROM mfgsync.endpoint_secret WHERE endpoint_id = :signed_id) AS secrets,
       (SELECT count(*) FROM mfgsync.retry WHERE endpoint_id = :signed_id) AS retries;
\pset format unaligned
\pset tuples_only on
SELECT try($$SELECT mfgsync.drop_endpoint('signed')$$);
SELECT try($$SELECT mfgsync.drop_endpoint(NULL)$$);
\pset format aligned
\pset tuples_only off
SELECT mfgsync.drop_endpoint('plain');
SELECT (SELECT count(*) FROM mfgsync.endpoint) AS endpoints,
       (SELECT count(*) FROM mfgsync.endpoint_secret) AS secrets,
       (SELECT count(*) FROM mfgsync.subscription) AS subscriptions,
       (SELECT count(*) FROM mfgsync.endpoint_state) AS state,
       (SELECT count(*) FROM mfgsync.retry) AS retries,
       (SELECT count(*) FROM mfgsync.dead_letter) AS dead,
       (SELECT count(*) FROM mfgsync.failure) AS failures;

-- clean up
DROP ROLE regress_mfg_admin, regress_mfg_admin2, regress_mfg_monitor, regress_mfg_nobody;
DROP TABLE ep_order, ep_line;
SELECT count(*) FROM mfgsync.tracked;
DELETE FROM mfgsync.outbox WHERE message_type IN ('RegressOrder', 'RegressLine');
