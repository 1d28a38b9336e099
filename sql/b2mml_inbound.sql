--
-- b2mml_inbound: receive_b2mml applies B2MML messages (XML, MESA JSON,
-- edinn JSON) to staging tables through inbound mappings, deduplicates them
-- and answers with a ConfirmBOD; every rejection reason; bad mappings.
--
-- Answers carry their own CreationDateTime and BODID: "masked" blanks the
-- first of each (the answer's own ApplicationArea) so that output is stable.
-- Helpers are prefixed in_ (the regression database is shared by all tests).
--
CREATE FUNCTION in_masked(answer text) RETURNS text
LANGUAGE sql AS $$
    SELECT regexp_replace(regexp_replace(answer,
        '<CreationDateTime>[^<]*</CreationDateTime>', '<CreationDateTime>(now)</CreationDateTime>'),
        '<BODID>[^<]*</BODID>', '<BODID>(new)</BODID>')
$$;

-- status, Description and Note of an XML ConfirmBOD
CREATE FUNCTION in_confirm(answer text, OUT status text, OUT description text, OUT note text)
LANGUAGE sql AS $$
    SELECT (xpath('/b:ConfirmBOD/b:DataArea/b:Confirm/b:ResponseCriteria/b:ResponseExpression/@actionCode', x, ns))[1]::text,
           (xpath('/b:ConfirmBOD/b:DataArea/b:BOD/b:Description/text()', x, ns))[1]::text,
           (xpath('/b:ConfirmBOD/b:DataArea/b:BOD/b:Note/text()', x, ns))[1]::text
      FROM (SELECT answer::xml AS x,
                   ARRAY[ARRAY['b', 'http://www.mesa.org/xml/B2MML-V0600']] AS ns) s
$$;


-- a SyncProductionPerformance around one ProductionResponse
CREATE FUNCTION in_perf(bodid text, response text, action text DEFAULT 'Add',
                     verb text DEFAULT 'Sync') RETURNS text
LANGUAGE sql AS $$
    SELECT format($x$<?xml version="1.0" encoding="UTF-8"?>
<%2$sProductionPerformance xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">
  <ApplicationArea>
    <Sender><LogicalID>MES-PLANT-A</LogicalID><ConfirmationCode>Always</ConfirmationCode></Sender>
    <CreationDateTime>2024-05-06T14:05:12Z</CreationDateTime>
    <BODID>%1$s</BODID>
  </ApplicationArea>
  <DataArea>
    %4$s
    <ProductionPerformance>%3$s</ProductionPerformance>
  </DataArea>
</%2$sProductionPerformance>$x$, bodid, verb, response,
        CASE WHEN verb = 'Cancel' THEN '<Cancel/>'
             ELSE format('<Sync><ActionCriteria><ActionExpression actionCode="%s"/></ActionCriteria></Sync>', action) END)
$$;

-- staging tables; the response table is tracked, so the capture trigger fires
CREATE TABLE in_response (
    response_id text PRIMARY KEY,
    order_code  text,
    started     timestamptz,
    ended       timestamptz,
    state       text,
    cancelled   boolean NOT NULL DEFAULT false
);
CREATE TABLE in_segment (
    plant       text,
    segment_id  text,
    response_id text,
    operation   text,
    started     timestamptz,
    produced    numeric,
    scrap       integer,
    state       text,
    other_state text,
    PRIMARY KEY (plant, segment_id)
);
CREATE TABLE in_order (
    order_code text PRIMARY KEY,
    product    text,
    quantity   numeric,
    unit       text,
    start_at   timestamptz,
    machine    text
);
CREATE TABLE in_order_op (
    order_code text,
    op_id      text UNIQUE,
    duration   interval
);
CREATE TABLE in_material (
    code       text PRIMARY KEY,
    name       text,
    base_unit  text,
    net_weight numeric,
    weight_uom text,
    class      text
);
SELECT mfgsync.track('in_response', 'InboundResponse');

--
-- mappings, and every bad one
--
SELECT mfgsync.map_inbound('ProductionResponse', 'in_response',
    '{"response_id": "ID", "order_code": "ProductionRequestID", "started": "StartTime",
      "ended": "EndTime", "state": "ResponseState"}',
    cancelled_column => 'cancelled');
SELECT mfgsync.map_inbound('SegmentResponse', 'in_segment',
    '{"plant": "../../../../ApplicationArea/Sender/LogicalID", "segment_id": "ID",
      "response_id": "../ID", "operation": "ProcessSegmentID", "started": "ActualStartTime",
      "produced": "MaterialActual[MaterialUse=Produced]/Quantity/QuantityString",
      "scrap": "ProductionData[ID=ScrapCount]/Value/ValueString",
      "state": "SegmentState", "other_state": "SegmentState/@OtherValue"}',
    key_columns => '{plant,segment_id}');
SELECT mfgsync.map_inbound('ProductionRequest', 'in_order',
    '{"order_code": "ID", "start_at": "StartTime",
      "product": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/MaterialDefinitionID",
      "quantity": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/Quantity/QuantityString",
      "unit": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/Quantity/UnitOfMeasure",
      "machine": "SegmentRequirement/EquipmentRequirement/EquipmentID"}');
SELECT mfgsync.map_inbound('SegmentRequirement', 'in_order_op',
    '{"order_code": "../ID", "op_id": "ID", "duration": "Duration"}',
    key_columns => '{op_id}');
SELECT mfgsync.map_inbound('MaterialDefinition', 'in_material',
    '{"code": "ID", "name": "Description", "class": "MaterialClassID",
      "base_unit": "MaterialDefinitionProperty[ID=BaseUnitOfMeasure]/Value/ValueString",
      "net_weight": "MaterialDefinitionProperty[ID=NetWeight]/Value/ValueString",
      "weight_uom": "MaterialDefinitionProperty[ID=NetWeight]/Value/UnitOfMeasure"}');
SELECT element, target, key_columns, cancelled_column FROM mfgsync.inbound_mappings ORDER BY 1;

SELECT try($$SELECT mfgsync.map_inbound('OperationsResponse', 'in_response', '{"response_id": "ID"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'mfgsync.events', '{"id": "ID"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '[]')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": 1}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"nope": "ID"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID/"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID[ID]"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "@x/ID"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID; DROP TABLE x"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"state": "ResponseState"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID", "state": "ResponseState"}', '{state}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID"}', '{}')$$);
SELECT try($$SELECT mfgsync.map_inbound('SegmentRequirement', 'in_order_op', '{"op_id": "ID"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID"}', cancelled_column => 'state')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID", "cancelled": "ID"}', cancelled_column => 'cancelled')$$);
SELECT try($$SELECT mfgsync.map_inbound('MaterialDefinition', 'in_material', '{"code": "ID", "name": "Location"}')$$);
SELECT try($$SELECT mfgsync.map_inbound('MaterialDefinition', 'in_material', '{"code": "Description"}')$$);
SELECT try($$SELECT mfgsync.unmap_inbound('SegmentResponse ')$$);
-- a rejected declaration changed nothing
SELECT element, columns->>'response_id' AS response_id FROM mfgsync.inbound_mappings
 WHERE element = 'ProductionResponse';

--
-- SyncProductionPerformance (XML): applied, answered, replay changes nothing
--
SELECT in_masked(mfgsync.receive_b2mml(in_perf('bodid-1', $x$
  <ProductionResponse>
    <ID>RESP-1</ID><ProductionRequestID>WO-1</ProductionRequestID>
    <StartTime>2024-05-06T10:02:00+02:00</StartTime>
    <SegmentResponse>
      <ID>OP10</ID><ProcessSegmentID>STAMPING</ProcessSegmentID>
      <ActualStartTime>2024-05-06T10:02:00Z</ActualStartTime>
      <ProductionData><ID>ScrapCount</ID><Value><ValueString>7</ValueString></Value></ProductionData>
      <MaterialActual><MaterialDefinitionID>COIL</MaterialDefinitionID><MaterialUse>Consumed</MaterialUse>
        <Quantity><QuantityString>124.9</QuantityString></Quantity></MaterialActual>
      <MaterialActual><MaterialDefinitionID>BRKT-7</MaterialDefinitionID><MaterialUse>Produced</MaterialUse>
        <Quantity><QuantityString>493</QuantityString></Quantity></MaterialActual>
      <SegmentState OtherValue="Started">Other</SegmentState>
    </SegmentResponse>
    <SegmentResponse><ID>OP20</ID><ProcessSegmentID>PAINT &amp; DRY</ProcessSegmentID></SegmentResponse>
    <ResponseState>Running</ResponseState>
  </ProductionResponse>$x$)));
SELECT * FROM in_response;
SELECT * FROM in_segment ORDER BY segment_id;
SELECT action, key, data->>'state' AS state FROM take_events();
-- the replay gets the very same answer (same BODID) and changes nothing
SELECT a = (SELECT answer FROM mfgsync.inbound_message WHERE dedup_key = 'BODID:bodid-1') AS same_answer
  FROM mfgsync.receive_b2mml(in_perf('bodid-1', '<ProductionResponse><ID>RESP-1</ID><ResponseState>Aborted</ResponseState></ProductionResponse>')) a;
SELECT state FROM in_response;
SELECT count(*) AS events FROM take_events();
SELECT count(*) FROM mfgsync.inbound_message WHERE dedup_key = 'BODID:bodid-1';

-- Change: only what differs is written; an unchanged row emits no event
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-2', $x$
  <ProductionResponse><ID>RESP-1</ID><ProductionRequestID>WO-1</ProductionRequestID>
    <StartTime>2024-05-06T08:02:00Z</StartTime>
    <SegmentResponse><ID>OP20</ID><ProcessSegmentID>PAINT &amp; DRY</ProcessSegmentID></SegmentResponse>
    <ResponseState>Completed</ResponseState>
  </ProductionResponse>$x$, 'Change')));
SELECT action, key, data->>'state' AS state, old_data->>'state' AS old_state FROM take_events();
SELECT segment_id, operation, state FROM in_segment ORDER BY segment_id;

-- Cancel: the response is marked, its listed segment response deleted
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-3',
    '<ProductionResponse><ID>RESP-1</ID><SegmentResponse><ID>OP10</ID></SegmentResponse></ProductionResponse>',
    verb => 'Cancel')));
SELECT response_id, cancelled FROM in_response;
SELECT segment_id FROM in_segment ORDER BY segment_id;
-- Sync Delete does the same; a row that is not there is counted unchanged
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-4',
    '<ProductionResponse><ID>RESP-1</ID><SegmentResponse><ID>OP20</ID></SegmentResponse><SegmentResponse><ID>OP99</ID></SegmentResponse></ProductionResponse>',
    'Delete')));
SELECT count(*) AS segments FROM in_segment;
-- a later Sync brings the cancelled response back
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-5',
    '<ProductionResponse><ID>RESP-1</ID><ResponseState>Completed</ResponseState></ProductionResponse>')));
SELECT response_id, order_code, state, cancelled FROM in_response;

-- all or nothing: a bad value in the second segment leaves the first unwritten
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-6', $x$
  <ProductionResponse><ID>RESP-2</ID>
    <SegmentResponse><ID>A</ID></SegmentResponse>
    <SegmentResponse><ID>B</ID><ProductionData><ID>ScrapCount</ID><Value><ValueString>many</ValueString></Value></ProductionData></SegmentResponse>
  </ProductionResponse>$x$)));
SELECT count(*) AS rows FROM in_response WHERE response_id = 'RESP-2';
-- a rejected message does not take its key: fixed, it is applied
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-6', $x$
  <ProductionResponse><ID>RESP-2</ID>
    <SegmentResponse><ID>A</ID></SegmentResponse>
    <SegmentResponse><ID>B</ID><ProductionData><ID>ScrapCount</ID><Value><ValueString>3</ValueString></Value></ProductionData></SegmentResponse>
  </ProductionResponse>$x$)));
SELECT segment_id, scrap FROM in_segment WHERE response_id = 'RESP-2' ORDER BY 1;
SELECT status, description IS NOT NULL AS has_description FROM mfgsync.inbound_messages
 WHERE dedup_key = 'BODID:bodid-6' ORDER BY id;
-- a missing key rejects the whole message
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-7',
    '<ProductionResponse><ID>RESP-3</ID><SegmentResponse><ProcessSegmentID>X</ProcessSegmentID></SegmentResponse></ProductionResponse>')));
SELECT count(*) AS rows FROM in_response WHERE response_id = 'RESP-3';
-- a trigger's error is a rejection too
CREATE FUNCTION in_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'order % is closed', NEW.order_code; END $$;
CREATE TRIGGER in_refuse BEFORE INSERT ON in_response FOR EACH ROW
    WHEN (NEW.order_code = 'CLOSED') EXECUTE FUNCTION in_refuse();
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('bodid-8',
    '<ProductionResponse><ID>RESP-4</ID><ProductionRequestID>CLOSED</ProductionRequestID></ProductionResponse>')));
DROP TRIGGER in_refuse ON in_response;
SELECT count(*) AS events FROM take_events();

--
-- SyncProductionSchedule: orders and their operations
--
SELECT * FROM in_confirm(mfgsync.receive_b2mml($x$<SyncProductionSchedule xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">
  <ApplicationArea><Sender><LogicalID>ERP</LogicalID></Sender>
    <CreationDateTime>2024-05-06T06:00:00.1234567+02:00</CreationDateTime><BODID>sched-1</BODID></ApplicationArea>
  <DataArea><Sync/>
    <ProductionSchedule><ID>S1</ID>
      <ProductionRequest><ID>WO-7</ID><StartTime>2024-05-07T06:00:00Z</StartTime>
        <SegmentRequirement><ID>WO-7-10</ID><Duration>PT4H</Duration>
          <EquipmentRequirement><EquipmentID>PRESS-07</EquipmentID></EquipmentRequirement>
          <MaterialRequirement><MaterialDefinitionID>COIL</MaterialDefinitionID><MaterialUse>Consumed</MaterialUse></MaterialRequirement>
          <MaterialRequirement><MaterialDefinitionID>BRKT-7</MaterialDefinitionID><MaterialUse>Produced</MaterialUse>
            <Quantity><QuantityString>500</QuantityString><UnitOfMeasure>EA</UnitOfMeasure></Quantity></MaterialRequirement>
        </SegmentRequirement>
        <SegmentRequirement><ID>WO-7-20</ID><Duration>PT30M</Duration></SegmentRequirement>
      </ProductionRequest>
    </ProductionSchedule>
  </DataArea></SyncProductionSchedule>$x$));
SELECT * FROM in_order;
SELECT * FROM in_order_op ORDER BY op_id;

--
-- GetMaterialInformation: ShowMaterialInformation from the material table
--
INSERT INTO in_material VALUES
    ('BRKT-7', 'Bracket <7> & "co"', 'EA', 0.245, 'KGM', 'FINISHED-GOODS'),
    ('COIL', NULL, 'KGM', NULL, NULL, NULL);
SELECT in_masked(mfgsync.receive_b2mml($x$<GetMaterialInformation xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">
  <ApplicationArea><Sender><LogicalID>MES</LogicalID></Sender>
    <CreationDateTime>2024-05-06T07:59:00Z</CreationDateTime><BODID>get-1</BODID></ApplicationArea>
  <DataArea><Get/><MaterialInformation>
    <MaterialDefinition><ID>BRKT-7</ID></MaterialDefinition>
    <MaterialDefinition><ID>NO-SUCH</ID></MaterialDefinition>
  </MaterialInformation></DataArea></GetMaterialInformation>$x$));
-- the wildcard, in edinn's JSON: the answer is edinn JSON too
SELECT jsonb_path_query(mfgsync.receive_b2mml($j${"GetMaterialInformation": {
    "ApplicationArea": {"Sender": {"LogicalID": "20240506075900MES"}, "CreationDateTime": "2024-05-06T07:59:00"},
    "DataArea": {"Get": [], "MaterialInformation": {"MaterialDefinition": {"ID": "*"}}}}}$j$)::jsonb,
    '$.ShowMaterialInformation.DataArea.MaterialInformation') AS material_information;
-- a Get is not deduplicated: it keeps no key
SELECT count(*) FROM mfgsync.inbound_message WHERE message_type = 'GetMaterialInformation' AND dedup_key IS NOT NULL;
SELECT * FROM in_confirm(mfgsync.receive_b2mml($x$<GetMaterialInformation xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">
  <ApplicationArea><CreationDateTime>2024-05-06T07:59:00Z</CreationDateTime><BODID>get-2</BODID></ApplicationArea>
  <DataArea><Get/><MaterialInformation><MaterialLot><ID>L1</ID></MaterialLot></MaterialInformation></DataArea></GetMaterialInformation>$x$));

--
-- JSON: MESA's dialect (arrays) and edinn's (objects, [] for empty, quirks)
--
SELECT mfgsync.receive_b2mml($j${"SyncProductionPerformance": {"@releaseID": "B2MML-V0600",
    "ApplicationArea": {"Sender": {"LogicalID": "MES-PLANT-B"}, "CreationDateTime": "2024-05-06T14:05:12Z", "BODID": "json-1"},
    "DataArea": {"Sync": {"ActionCriteria": [{"ActionExpression": [{"@actionCode": "Add"}]}]},
      "ProductionPerformance": [{"ProductionResponse": [{"ID": "RESP-J1",
        "SegmentResponse": [{"ID": "J1-10", "ProcessSegmentID": ["WELD"],
          "SegmentState": {"@OtherValue": "Started", "$": "Other"}}]}]}]}}}$j$)::jsonb
    #> '{ConfirmBOD,DataArea,Confirm,ResponseCriteria,0,ResponseExpression,@actionCode}' AS mesa_status;
SELECT mfgsync.receive_b2mml($j${"SyncProductionPerformance": {
    "ApplicationArea": {"Sender": {"LogicalID": "20200526172352AABCENTRAL"}, "CreationDateTime": "2020-05-26T17:23:52"},
    "DataArea": {"Sync": {"ActionCriteria": {"ActionExpression": {"@actionCode": "Add"}}},
      "ProductionPerformance": {"ProductionResponse": {"ID": "RESP-E1", "ProductionRequestID": "WO-E",
        "SegmentResponse": {"ID": "E1-10", "ProcessSegmentId": "CUT", "ActualStartTime": [],
          "MaterialActual": {"MaterialUse": "Produced", "Quantity": {"QuantityString": "0,100"}},
          "Any": {"UserArea": {"Vendor": "x"}}}}}}}}$j$)::jsonb
    #> '{ConfirmBOD,DataArea,Confirm,ResponseCriteria,ResponseExpression,@actionCode}' AS edinn_status;
SELECT plant, segment_id, response_id, operation, started, produced, state, other_state
  FROM in_segment WHERE response_id IN ('RESP-J1', 'RESP-E1') ORDER BY 2;
SELECT dedup_key, sender FROM mfgsync.inbound_messages WHERE dedup_key IN ('BODID:json-1', 'LogicalID:20200526172352AABCENTRAL');
-- the replay of an XML message as JSON gets the same answer, in JSON
SELECT (mfgsync.receive_b2mml($j${"SyncProductionPerformance": {"@releaseID": "B2MML-V0600",
    "ApplicationArea": {"CreationDateTime": "2024-05-06T14:05:12Z", "BODID": "bodid-5"},
    "DataArea": {"Sync": {}, "ProductionPerformance": [{}]}}}$j$)::jsonb
    #>> '{ConfirmBOD,ApplicationArea,BODID}')
    = (xpath('/b:ConfirmBOD/b:ApplicationArea/b:BODID/text()', answer::xml,
             ARRAY[ARRAY['b', 'http://www.mesa.org/xml/B2MML-V0600']]))[1]::text AS same_bodid
  FROM mfgsync.inbound_message WHERE dedup_key = 'BODID:bodid-5';

--
-- rejections: each says what is wrong
--
SELECT * FROM in_confirm(mfgsync.receive_b2mml('<SyncProductionPerformance xmlns="http://www.mesa.org/xml/B2MML-V0600"><ApplicationArea></SyncProductionPerformance>'));
SELECT mfgsync.receive_b2mml('{"SyncProductionPerformance": {"ApplicationArea": }')::jsonb
    #> '{ConfirmBOD,DataArea,BOD}' AS json_not_well_formed;
SELECT * FROM in_confirm(mfgsync.receive_b2mml('SyncProductionPerformance'));
SELECT * FROM in_confirm(mfgsync.receive_b2mml('   '));
SELECT * FROM in_confirm(mfgsync.receive_b2mml('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ConfirmBOD>&e;</ConfirmBOD>'));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('ns-1', ''), 'B2MML-V0600"', 'B2MML"')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('ns-2', ''), ' xmlns="http://www.mesa.org/xml/B2MML-V0600"', '')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('ns-3', '<ProductionResponse><ID xmlns="urn:other">R</ID></ProductionResponse>'), 'x', 'x')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('noun-1', ''), 'ProductionPerformance', 'OperationsPerformance')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('noun-2', ''), 'SyncProductionPerformance', 'ShowProductionPerformance')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(replace(in_perf('x', ''), '<BODID>x</BODID>', ''), '<LogicalID>MES-PLANT-A</LogicalID>', '')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(replace(in_perf('x', ''), '<BODID>x</BODID>', '<BODID/>'), '<LogicalID>MES-PLANT-A</LogicalID>', '<LogicalID> </LogicalID>')));
-- without a BODID, Sender/LogicalID is the key (edinn's unique message id)
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(replace(in_perf('x', '<ProductionResponse><ID>RESP-N</ID></ProductionResponse>'), '<BODID>x</BODID>', ''), 'MES-PLANT-A', 'MSG-N1')));
SELECT dedup_key FROM mfgsync.inbound_messages WHERE dedup_key LIKE '%MSG-N1';
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('dt-1', ''), '2024-05-06T14:05:12Z', '2024-05-06')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('dt-2', ''), '2024-05-06T14:05:12Z', '2024-05-06 14:05:12')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('dt-3', ''), '2024-05-06T14:05:12Z', '2024-05-06T14:05:12+0200')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('dt-4', ''), '2024-05-06T14:05:12Z', '2023-02-29T10:00:00Z')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('dt-5', '<ProductionResponse><ID>R</ID><StartTime></StartTime></ProductionResponse>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('ac-1', '', 'Bogus')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('ac-2', '', 'add')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('ac-3', ''), '</ActionCriteria>', '</ActionCriteria><ActionCriteria><ActionExpression actionCode="Delete"/></ActionCriteria>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('rel-1', ''), ' releaseID="B2MML-V0600"', '')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('cc-1', ''), '>Always<', '>always<')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('q-1', '<ProductionResponse><ID>R</ID><SegmentResponse><ID>S</ID><MaterialActual><Quantity>5</Quantity></MaterialActual></SegmentResponse></ProductionResponse>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('st-1', '<ProductionResponse><ID>R</ID><ResponseState>Started</ResponseState></ProductionResponse>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('verb-1', ''), '<Sync>', '<Get/><Sync>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('nn-1', '<ProductionResponse/>'), '<ProductionPerformance>', '<ProductionSchedule/><ProductionPerformance>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml('<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600"><ApplicationArea><CreationDateTime>2024-05-06T14:20:01Z</CreationDateTime><BODID>c-1</BODID></ApplicationArea><DataArea><Confirm/><BOD/></DataArea></ConfirmBOD>'));
-- a ConfirmBOD for a message this database never sent
SELECT status, description LIKE 'unknown original message: %' AS unknown_original FROM in_confirm(mfgsync.receive_b2mml(
    '<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600"><ApplicationArea><CreationDateTime>2024-05-06T14:20:01Z</CreationDateTime><BODID>c-2</BODID></ApplicationArea><DataArea><Confirm><OriginalApplicationArea><CreationDateTime>2024-05-06T14:20:00Z</CreationDateTime><BODID>9a3c51e0-2b7d-4e55-a0c4-5d8e1f7b3c02</BODID></OriginalApplicationArea><ResponseCriteria><ResponseExpression actionCode="Accepted"/></ResponseCriteria></Confirm><BOD/></DataArea></ConfirmBOD>'));
-- no mapping for an element the message carries
SELECT mfgsync.unmap_inbound('SegmentRequirement');
SELECT * FROM in_confirm(mfgsync.receive_b2mml($x$<SyncProductionSchedule xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">
  <ApplicationArea><CreationDateTime>2024-05-06T06:00:00Z</CreationDateTime><BODID>sched-2</BODID></ApplicationArea>
  <DataArea><Sync/><ProductionSchedule><ProductionRequest><ID>WO-8</ID><SegmentRequirement><ID>WO-8-10</ID></SegmentRequirement></ProductionRequest></ProductionSchedule></DataArea></SyncProductionSchedule>$x$));
SELECT count(*) FROM in_order WHERE order_code = 'WO-8';
-- JSON rejections in JSON
SELECT mfgsync.receive_b2mml('{"SyncProductionPerformance": {"ApplicationArea": {"CreationDateTime": "yesterday", "BODID": "j-2"}}}')::jsonb
    #> '{ConfirmBOD,DataArea,BOD}' AS edinn_bad_datetime;
SELECT mfgsync.receive_b2mml('[1, 2]')::jsonb #> '{ConfirmBOD,DataArea,BOD}' AS json_array;
SELECT mfgsync.receive_b2mml('{"SyncProductionPerformance": {"ApplicationArea": {"Sender": {"LogicalID": [[1]]}}}}')::jsonb
    #> '{ConfirmBOD,DataArea,BOD}' AS json_nested_arrays;

-- with the XSD (the copy installed with the extension): element order and
-- everything else the schema says
SET mfgsync.b2mml_schema = '$sharedir/extension/mfgsync/b2mml/mfgsync-b2mml-V0600.xsd';
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('xsd-1', '<ProductionResponse><ResponseState>Completed</ResponseState><ID>R</ID></ProductionResponse>')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(in_perf('xsd-2', '<ProductionResponse><ID>RESP-X</ID><StartTime>2024-05-06T10:00:00Z</StartTime></ProductionResponse>')));
SET mfgsync.b2mml_schema = '/nonexistent/b2mml.xsd';
SELECT try($$SELECT mfgsync.receive_b2mml(in_perf('xsd-3', ''))$$);
RESET mfgsync.b2mml_schema;

-- dedup on Sender/LogicalID (edinn): the BODID is then ignored
SET mfgsync.b2mml_dedup_key = 'logicalid';
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('lid-1', '<ProductionResponse><ID>RESP-L</ID></ProductionResponse>'), 'MES-PLANT-A', 'MSG-0001')));
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('lid-2', '<ProductionResponse><ID>RESP-L</ID><ResponseState>Aborted</ResponseState></ProductionResponse>'), 'MES-PLANT-A', 'MSG-0001')));
SELECT state FROM in_response WHERE response_id = 'RESP-L';
SELECT count(*) FROM mfgsync.inbound_messages WHERE dedup_key = 'LogicalID:MSG-0001';
SET mfgsync.b2mml_dedup_key = 'bodid';
SELECT * FROM in_confirm(mfgsync.receive_b2mml(replace(in_perf('x', ''), '<BODID>x</BODID>', '')));
RESET mfgsync.b2mml_dedup_key;
SELECT try($$SET mfgsync.b2mml_dedup_key = 'sender'$$);

-- who may call it: admins, and roles they grant it to
CREATE ROLE in_gateway;
SET ROLE in_gateway;
SELECT try($$SELECT mfgsync.receive_b2mml('x')$$);
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID"}')$$);
RESET ROLE;
GRANT USAGE ON SCHEMA mfgsync TO in_gateway;
GRANT EXECUTE ON FUNCTION mfgsync.receive_b2mml(text) TO in_gateway;
SET ROLE in_gateway;
SELECT status FROM in_confirm(mfgsync.receive_b2mml(in_perf('gw-1', '<ProductionResponse><ID>RESP-G</ID></ProductionResponse>')));
RESET ROLE;
SELECT response_id FROM in_response WHERE response_id = 'RESP-G';
-- an admin may only map tables it may write
CREATE ROLE in_admin IN ROLE mfgsync_admin;
SET ROLE in_admin;
SELECT try($$SELECT mfgsync.map_inbound('ProductionResponse', 'in_response', '{"response_id": "ID"}')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION mfgsync.receive_b2mml(text) FROM in_gateway;
REVOKE USAGE ON SCHEMA mfgsync FROM in_gateway;
DROP ROLE in_gateway, in_admin;

SELECT status, count(*) FROM mfgsync.inbound_messages GROUP BY 1 ORDER BY 1;
SELECT mfgsync.untrack('in_response');
DROP TABLE in_response, in_segment, in_order, in_order_op, in_material;
DROP FUNCTION in_refuse();
DELETE FROM mfgsync.inbound_mapping;
DROP FUNCTION in_masked(text), in_confirm(text), in_perf(text, text, text, text);
