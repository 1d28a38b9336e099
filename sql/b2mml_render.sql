-- B2MML rendering: every message type, actions, NULLs, special characters,
-- time zones, both JSON dialects, hooks, and bad mappings.  Every document
-- is validated with xmllint --schema (test/b2mml_validate.sh prints
-- "valid" or "INVALID" with the errors).
CREATE EXTENSION IF NOT EXISTS mfgsync;
SET client_min_messages = warning;

CREATE TABLE b2_order (
    order_code   text PRIMARY KEY,
    product_code text NOT NULL,
    machine_code text,
    quantity     numeric(12,3),
    unit         text,
    "start"      timestamptz,
    "end"        timestamptz
);
CREATE TABLE b2_booking (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_code   text NOT NULL,
    event        text NOT NULL,
    machine_code text NOT NULL,
    booked_at    timestamptz NOT NULL
);
SELECT mfgsync.track('b2_order', 'B2Order');
SELECT mfgsync.track('b2_booking', 'B2Booking');

-- endpoints stay paused: the senders must not deliver during the test
SELECT mfgsync.create_endpoint('b2-xml', 'http://127.0.0.1:9/b2mml', 'b2mml',
                               '{"component_id": "erp-1", "receiver_logical_id": "MES-PLANT-A"}') > 0 AS created;
SELECT mfgsync.create_endpoint('b2-mesa', 'http://127.0.0.1:9/b2mml', 'b2mml',
                               '{"dialect": "json-mesa", "logical_id": "ERP-PROD-01"}') > 0 AS created;
SELECT mfgsync.create_endpoint('b2-edinn', 'http://127.0.0.1:9/b2mml', 'b2mml',
                               '{"dialect": "json-edinn", "confirmation_code": "OnError"}') > 0 AS created;
SELECT mfgsync.pause_endpoint(e) FROM unnest(ARRAY['b2-xml', 'b2-mesa', 'b2-edinn']) e;
SELECT mfgsync.subscribe(e, ARRAY['B2Order', 'B2Booking'])
  FROM unnest(ARRAY['b2-xml', 'b2-mesa', 'b2-edinn']) e;
SELECT mfgsync.b2mml_map(e, 'B2Booking', 'ProductionPerformance')
  FROM unnest(ARRAY['b2-xml', 'b2-mesa', 'b2-edinn']) e;
SELECT endpoint, message_type, document, defaults FROM mfgsync.b2mml_mappings ORDER BY 1, 2;
SELECT name, options FROM mfgsync.endpoints WHERE format = 'b2mml' ORDER BY name;

-- CreationDateTime is the event's created_at: made fixed for the test
CREATE FUNCTION pin_times() RETURNS void LANGUAGE sql AS
$$ UPDATE mfgsync.outbox SET created_at = '2026-11-23 07:00:00.25+01'
    WHERE message_type IN ('B2Order', 'B2Booking') $$;

-- 1. SyncProductionSchedule: Add with every canonical field, time zones
--    (session in India, +05:30) and characters XML escapes
SET TIME ZONE 'Asia/Kolkata';
INSERT INTO b2_order VALUES
    ('PO-1 <&> "q" ''a''', 'Größe µ-10 ✓', 'M-1', 500, 'pcs', '2026-11-23 06:00', '2026-11-23 14:30:00.5+01');
RESET TIME ZONE;
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml

-- 2. Change (actionCode Change) and Delete (actionCode Delete, from old_data)
UPDATE b2_order SET machine_code = 'M-2', quantity = 0.5 WHERE order_code LIKE 'PO-1%';
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
DELETE FROM b2_order WHERE order_code LIKE 'PO-1%';
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml

-- 3. NULL fields: elements left out, never empty
INSERT INTO b2_order (order_code, product_code) VALUES ('PO-2', 'P-2');
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml

-- 4. SyncProductionPerformance from bookings (START, END), Cancel on delete
INSERT INTO b2_booking (order_code, event, machine_code, booked_at)
VALUES ('PO-2', 'START', 'M-1', '2026-11-23 06:04:00-05');
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
INSERT INTO b2_booking (order_code, event, machine_code, booked_at)
VALUES ('PO-2', 'END', 'M-1', '2026-11-23 13:41:00+01');
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
DELETE FROM b2_booking WHERE event = 'END';
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
-- with cancel_on_delete => false a Delete is a Sync with actionCode Delete
SELECT mfgsync.b2mml_map('b2-xml', 'B2Booking', 'ProductionPerformance', cancel_on_delete => false);
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml

-- 5. both JSON dialects (validated through their XML form); masked as
--    test/b2mml_validate.sh masks XML
CREATE FUNCTION masked(doc text) RETURNS text LANGUAGE sql AS
$$ SELECT regexp_replace(regexp_replace(doc, '"BODID":"[^"]*"', '"BODID":"(uuid)"'),
                         'mfgsync-[0-9]+-[0-9]+', 'mfgsync-(endpoint)-(event)') $$;
SELECT max(id) - 3 AS order_id, max(id) AS id FROM mfgsync.events \gset
SELECT masked(mfgsync.b2mml_render(:order_id, 'b2-mesa'));
SELECT mfgsync.b2mml_convert(mfgsync.b2mml_render(:order_id, 'b2-mesa'), 'xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
SELECT masked(mfgsync.b2mml_render(:id, 'b2-edinn'));
SELECT mfgsync.b2mml_convert(mfgsync.b2mml_render(:id, 'b2-edinn'), 'xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
-- the same event in both dialects says the same
SELECT mfgsync.b2mml_convert(mfgsync.b2mml_render(:order_id, 'b2-mesa'), 'json-edinn')::jsonb
     = mfgsync.b2mml_convert(mfgsync.b2mml_render(:order_id, 'b2-mesa'), 'json-edinn')::jsonb AS same,
       mfgsync.b2mml_render(:order_id, 'b2-mesa')::jsonb #> '{SyncProductionSchedule,DataArea,ProductionSchedule,0,ProductionRequest,0,ID}' AS mesa_id,
       mfgsync.b2mml_render(:order_id, 'b2-edinn')::jsonb #> '{SyncProductionSchedule,DataArea,ProductionSchedule,ProductionRequest,ID}' AS edinn_id;

-- 6. an explicit mapping: schedule ID, states outside the enumeration
CREATE TABLE work_order (wo text PRIMARY KEY, plan text, state text, prio numeric,
                         op text, material text, lot text, use text, qty text);
SELECT mfgsync.track('work_order', 'B2WorkOrder');
SELECT mfgsync.subscribe('b2-xml', ARRAY['B2WorkOrder']);
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule',
    '{"wo": "ProductionRequestID", "plan": "ScheduleID", "state": "RequestState",
      "prio": "Priority", "op": "ProcessSegmentID", "material": "MaterialDefinitionID",
      "lot": "MaterialLotID", "use": "MaterialUse", "qty": "Quantity"}');
INSERT INTO work_order VALUES ('WO-7', 'SCHED-1', 'Started', 2.5, 'STAMPING', 'STEEL', 'L-1', 'Output', '0,100');
SELECT pin_times(), max(id) AS id FROM mfgsync.events \gset
UPDATE mfgsync.outbox SET created_at = '2026-11-23 07:00:00Z' WHERE id = :id;
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml

-- 7. a hook builds nested documents: one order, N operations
CREATE TABLE operation (wo text, seq int, segment text, machine text, PRIMARY KEY (wo, seq));
INSERT INTO operation VALUES ('WO-7', 10, 'STAMPING', 'PRESS-07'), ('WO-7', 20, 'PAINT', 'BOOTH-2');
CREATE FUNCTION wo_document(event mfgsync.events) RETURNS xml
LANGUAGE sql STABLE SET search_path = public AS $$
    SELECT xmlelement(name "ProductionSchedule",
             xmlelement(name "ProductionRequest",
               xmlelement(name "ID", event.key->>'wo'),
               xmlagg(xmlelement(name "SegmentRequirement",
                        xmlelement(name "ID", o.wo || '-' || o.seq),
                        xmlelement(name "ProcessSegmentID", o.segment),
                        xmlelement(name "EquipmentRequirement",
                          xmlelement(name "EquipmentID", o.machine)))
                      ORDER BY o.seq)))
      FROM operation o WHERE o.wo = event.key->>'wo'
$$;
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', hook => 'wo_document(mfgsync.events)');
SELECT mfgsync.b2mml_render(:id, 'b2-xml') \g (format=unaligned tuples_only=on) results/b2mml_doc.xml
\! sh test/b2mml_validate.sh results/b2mml_doc.xml
-- a hook must return the document's nouns in the B2MML namespace
CREATE OR REPLACE FUNCTION wo_document(event mfgsync.events) RETURNS xml
LANGUAGE sql AS $$ SELECT '<ProductionPerformance/>'::xml $$;
SELECT mfgsync.b2mml_render(:id, 'b2-xml');
CREATE OR REPLACE FUNCTION wo_document(event mfgsync.events) RETURNS xml
LANGUAGE sql AS $$ SELECT '<ProductionSchedule xmlns="urn:other"/>'::xml $$;
SELECT mfgsync.b2mml_render(:id, 'b2-xml');
CREATE OR REPLACE FUNCTION wo_document(event mfgsync.events) RETURNS xml
LANGUAGE sql AS $$ SELECT NULL::xml $$;
SELECT mfgsync.b2mml_render(:id, 'b2-xml');

-- 8. values that cannot be sent are errors, never silently dropped
CREATE TABLE odd (id int PRIMARY KEY, order_code text, start text);
SELECT mfgsync.track('odd', 'B2Odd');
SELECT mfgsync.subscribe('b2-xml', ARRAY['B2Odd']);
INSERT INTO odd VALUES (1, E'bell\x07', NULL);
SELECT max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml');
INSERT INTO odd VALUES (2, 'ok', 'next tuesday');
SELECT max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml');
INSERT INTO odd VALUES (3, 'ok', 'infinity');
SELECT max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml');
-- a date-time with an offset, in text: written in UTC
INSERT INTO odd VALUES (4, 'ok', '2026-11-23T06:00:00.123+02:00');
SELECT max(id) AS id FROM mfgsync.events \gset
SELECT mfgsync.b2mml_render(:id, 'b2-xml')::xml IS DOCUMENT AS ok,
       substring(mfgsync.b2mml_render(:id, 'b2-xml') from '<EarliestStartTime>[^<]*') AS start;

-- 9. bad mappings and options are rejected with clear errors
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '{"nope": "ScheduleID"}');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '{"wo": "OrderNumber"}');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '{"wo": 5}');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '{"wo": "ProductionRequestID", "plan": "ProductionRequestID"}');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '["wo"]');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionPerformance', '{"wo": "EarliestStartTime"}');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionOrder');
SELECT mfgsync.b2mml_map('b2-xml', 'B2Nothing', 'ProductionSchedule');
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', '{"wo": "ProductionRequestID"}', 'wo_document(mfgsync.events)');
CREATE FUNCTION wrong_hook(event mfgsync.events) RETURNS text LANGUAGE sql AS $$ SELECT '' $$;
SELECT mfgsync.b2mml_map('b2-xml', 'B2WorkOrder', 'ProductionSchedule', hook => 'wrong_hook(mfgsync.events)');
SELECT mfgsync.create_endpoint('hook-web', 'http://127.0.0.1:9/', 'webhook') > 0 AS created;
SELECT mfgsync.subscribe('hook-web', ARRAY['B2WorkOrder']);
SELECT mfgsync.b2mml_map('hook-web', 'B2WorkOrder');
SELECT mfgsync.b2mml_render(:id, 'hook-web');
SELECT mfgsync.create_endpoint('bad', 'http://127.0.0.1:9/', 'b2mml', '{"dialect": "yaml"}');
SELECT mfgsync.create_endpoint('bad', 'http://127.0.0.1:9/', 'b2mml', '{"confirmation_code": "always"}');
SELECT mfgsync.create_endpoint('bad', 'http://127.0.0.1:9/', 'webhook', '{"dialect": "xml"}');
SELECT mfgsync.create_endpoint('bad', 'http://127.0.0.1:9/', 'b2mml', '{"envelope": "cloudevents"}');
SELECT mfgsync.b2mml_render(-1, 'b2-xml');
SELECT mfgsync.b2mml_render(:id, 'nope');
SELECT mfgsync.b2mml_convert('<a>', 'xml');
SELECT mfgsync.b2mml_convert('{"a": 1', 'json-mesa');
SELECT mfgsync.b2mml_convert('<a/>', 'yaml');

-- 10. a late ConfirmBOD settles the message it names (BODID or LogicalID)
SELECT min(id) AS order_id FROM mfgsync.events WHERE message_type = 'B2Order' AND action = 'Add' \gset
SELECT substring(mfgsync.b2mml_render(:order_id, 'b2-xml') from '<BODID>([^<]*)') AS bodid \gset
SELECT mfgsync.b2mml_confirm(format($x$<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600">
  <ApplicationArea><CreationDateTime>2026-11-23T07:00:01Z</CreationDateTime></ApplicationArea>
  <DataArea><Confirm><OriginalApplicationArea><CreationDateTime>2026-11-23T07:00:00Z</CreationDateTime>
  <BODID>%s</BODID></OriginalApplicationArea>
  <ResponseCriteria><ResponseExpression actionCode="Rejected"/></ResponseCriteria></Confirm>
  <BOD><Description>unknown material</Description><Note>create it first</Note></BOD></DataArea></ConfirmBOD>$x$, :'bodid'));
SELECT endpoint, event_id = :order_id AS same_event, reason, rejection_description, rejection_note
  FROM mfgsync.dead_letters WHERE endpoint = 'b2-xml';
-- Accepted (JSON, matched by LogicalID) leaves a rejection alone
SELECT mfgsync.b2mml_confirm(format('{"ConfirmBOD": {"ApplicationArea": {"CreationDateTime": "2026-11-23T07:00:01Z"},
  "DataArea": {"Confirm": {"OriginalApplicationArea": {"Sender": {"LogicalID": "mfgsync-%s-%s"}}},
  "BOD": [{}]}}}', (SELECT id FROM mfgsync.endpoint WHERE name = 'b2-xml'), :order_id));
SELECT count(*) AS dead_letters FROM mfgsync.dead_letters WHERE endpoint = 'b2-xml';
-- names no message of this database
SELECT mfgsync.b2mml_confirm('<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600"><ApplicationArea/><DataArea><Confirm><OriginalApplicationArea><BODID>5f0c2a52-8d1e-4c4b-9a77-3b1f6e0d2a11</BODID></OriginalApplicationArea></Confirm><BOD/></DataArea></ConfirmBOD>');
SELECT mfgsync.b2mml_confirm('<SyncProductionSchedule/>');

SELECT mfgsync.drop_endpoint(e) FROM unnest(ARRAY['b2-xml', 'b2-mesa', 'b2-edinn', 'hook-web']) e;
SELECT mfgsync.untrack(t) FROM unnest(ARRAY['b2_order', 'b2_booking', 'work_order', 'odd']::regclass[]) t;
DROP TABLE b2_order, b2_booking, work_order, operation, odd;
DROP FUNCTION pin_times(), masked(text), wo_document(mfgsync.events), wrong_hook(mfgsync.events);
