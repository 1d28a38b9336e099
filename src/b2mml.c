/*-------------------------------------------------------------------------
 *
 * b2mml.c
 *		  ISA-95 B2MML V0600 outbound: rendering, mappings, confirmations
 *
 * An event becomes one Business Object Document (BOD).  Its DataArea comes
 * from the subscription's mapping (mfgsync.b2mml_mapping): either a
 * declarative list of payload field -> B2MML target pairs, which this file
 * places into a fixed tree in schema order, or a SQL function (the hook)
 * that returns the noun elements as xml, for nested documents.  The
 * document is always built as a libxml2 tree; the JSON dialects are
 * written from that tree (mfgsync_b2mml_doc_to_json, b2mml_json.c), so XML
 * and JSON say the same.  ConfirmBODs, synchronous or late, are read by
 * b2mml_read.c; this file settles the late ones (b2mml_confirm(), or
 * receive_b2mml) against the outbox.
 *
 * Invariants receivers rely on:
 *	 - a document depends only on the event, the endpoint's options and the
 *	   mapping: CreationDateTime is the event's created_at, BODID and (by
 *	   default) Sender/LogicalID are derived from the database, the endpoint
 *	   and the event id.  A retry therefore sends the same bytes, and
 *	   mfgsync.b2mml_render() shows exactly what is sent;
 *	 - BODID is a version 8 UUID that encodes the endpoint and event ids
 *	   behind a tag of this database, so a ConfirmBOD that arrives later can
 *	   be matched to its message without storing anything per message
 *	   (encode_bodid / decode_bodid);
 *	 - every element is written in schema order; the XML validates against
 *	   the MESA V0600 schemas (tested with xmllint, sql/b2mml_render.sql).
 *
 * Rendering runs in a transaction (jsonb and timestamptz input, the hook).
 * libxml2 allocates with malloc; every xmlDoc is freed on both the normal
 * and the error path.
 *
 * The Business To Manufacturing Markup Language (B2MML) is used courtesy
 * of MESA International.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"


#include "b2mml.h"
#include "mfgsync.h"
#include "outbox.h"

PG_FUNCTION_INFO_V1(mfgsync_b2mml_render);
PG_FUNCTION_INFO_V1(mfgsync_b2mml_confirm);
PG_FUNCTION_INFO_V1(mfgsync_b2mml_targets);
PG_FUNCTION_INFO_V1(mfgsync_b2mml_convert);

#define BAD_XML_HINT "B2MML documents are XML 1.0: control characters other than tab, line feed and carriage return cannot be sent."

/* ---------------------------------------------------------------------
 * Documents and targets of the declarative mapping
 * ---------------------------------------------------------------------
 */

typedef enum Document
{
	DOC_SCHEDULE,				/* SyncProductionSchedule */
	DOC_PERFORMANCE				/* Sync/CancelProductionPerformance */
} Document;

/* where a mapped value goes; one slot per place in the fixed trees */
typedef enum Slot
{
	S_SCHEDULE_ID,				/* ProductionSchedule/ID, .../ProductionScheduleID */
	S_PERFORMANCE_ID,			/* ProductionPerformance/ID */
	S_RESPONSE_ID,				/* ProductionResponse/ID */
	S_REQUEST_ID,				/* ProductionRequest/ID, .../ProductionRequestID */
	S_DESCRIPTION,				/* ProductionRequest/Description */
	S_START,					/* StartTime */
	S_END,						/* EndTime */
	S_PRIORITY,					/* ProductionRequest/Priority */
	S_SEGMENT_ID,				/* SegmentRequirement/ID, SegmentResponse/ID */
	S_PRODUCT_SEGMENT,			/* ProductSegmentID */
	S_PROCESS_SEGMENT,			/* ProcessSegmentID */
	S_SEGMENT_DESCRIPTION,		/* Segment*'s Description */
	S_EARLIEST,					/* EarliestStartTime */
	S_LATEST,					/* LatestEndTime */
	S_ACTUAL_START,				/* ActualStartTime */
	S_ACTUAL_END,				/* ActualEndTime */
	S_BOOKING_EVENT,			/* START / END of a booking */
	S_BOOKING_TIME,				/* when it was booked */
	S_EQUIPMENT,				/* Equipment{Requirement,Actual}/EquipmentID */
	S_MATERIAL,					/* Material*\/MaterialDefinitionID */
	S_LOT,						/* Material*\/MaterialLotID */
	S_MATERIAL_USE,				/* Material*\/MaterialUse */
	S_QUANTITY,					/* Material*\/Quantity/QuantityString */
	S_UNIT,						/* Material*\/Quantity/UnitOfMeasure */
	S_SEGMENT_STATE,			/* SegmentState */
	S_REQUEST_STATE,			/* RequestState / ResponseState */
	NSLOTS
} Slot;

typedef enum ValueKind
{
	K_TEXT,						/* as is */
	K_TIME,						/* xs:dateTime, written in UTC */
	K_DECIMAL					/* xs:decimal */
} ValueKind;

typedef struct Target
{
	Document	doc;			/* the document it belongs to */
	const char *name;			/* name in mappings */
	Slot		slot;			/* where it goes */
	ValueKind	kind;			/* how its value is checked */
} Target;

static const Target targets[] = {
	{DOC_SCHEDULE, "ScheduleID", S_SCHEDULE_ID, K_TEXT},
	{DOC_SCHEDULE, "ProductionRequestID", S_REQUEST_ID, K_TEXT},
	{DOC_SCHEDULE, "Description", S_DESCRIPTION, K_TEXT},
	{DOC_SCHEDULE, "StartTime", S_START, K_TIME},
	{DOC_SCHEDULE, "EndTime", S_END, K_TIME},
	{DOC_SCHEDULE, "Priority", S_PRIORITY, K_DECIMAL},
	{DOC_SCHEDULE, "SegmentID", S_SEGMENT_ID, K_TEXT},
	{DOC_SCHEDULE, "ProductSegmentID", S_PRODUCT_SEGMENT, K_TEXT},
	{DOC_SCHEDULE, "ProcessSegmentID", S_PROCESS_SEGMENT, K_TEXT},
	{DOC_SCHEDULE, "SegmentDescription", S_SEGMENT_DESCRIPTION, K_TEXT},
	{DOC_SCHEDULE, "EarliestStartTime", S_EARLIEST, K_TIME},
	{DOC_SCHEDULE, "LatestEndTime", S_LATEST, K_TIME},
	{DOC_SCHEDULE, "EquipmentID", S_EQUIPMENT, K_TEXT},
	{DOC_SCHEDULE, "MaterialDefinitionID", S_MATERIAL, K_TEXT},
	{DOC_SCHEDULE, "MaterialLotID", S_LOT, K_TEXT},
	{DOC_SCHEDULE, "MaterialUse", S_MATERIAL_USE, K_TEXT},
	{DOC_SCHEDULE, "Quantity", S_QUANTITY, K_TEXT},
	{DOC_SCHEDULE, "UnitOfMeasure", S_UNIT, K_TEXT},
	{DOC_SCHEDULE, "SegmentState", S_SEGMENT_STATE, K_TEXT},
	{DOC_SCHEDULE, "RequestState", S_REQUEST_STATE, K_TEXT},

	{DOC_PERFORMANCE, "PerformanceID", S_PERFORMANCE_ID, K_TEXT},
	{DOC_PERFORMANCE, "ProductionScheduleID", S_SCHEDULE_ID, K_TEXT},
	{DOC_PERFORMANCE, "ResponseID", S_RESPONSE_ID, K_TEXT},
	{DOC_PERFORMANCE, "ProductionRequestID", S_REQUEST_ID, K_TEXT},
	{DOC_PERFORMANCE, "StartTime", S_START, K_TIME},
	{DOC_PERFORMANCE, "EndTime", S_END, K_TIME},
	{DOC_PERFORMANCE, "SegmentResponseID", S_SEGMENT_ID, K_TEXT},
	{DOC_PERFORMANCE, "ProcessSegmentID", S_PROCESS_SEGMENT, K_TEXT},
	{DOC_PERFORMANCE, "ProductSegmentID", S_PRODUCT_SEGMENT, K_TEXT},
	{DOC_PERFORMANCE, "Description", S_SEGMENT_DESCRIPTION, K_TEXT},
	{DOC_PERFORMANCE, "ActualStartTime", S_ACTUAL_START, K_TIME},
	{DOC_PERFORMANCE, "ActualEndTime", S_ACTUAL_END, K_TIME},
	{DOC_PERFORMANCE, "BookingEvent", S_BOOKING_EVENT, K_TEXT},
	{DOC_PERFORMANCE, "BookingTime", S_BOOKING_TIME, K_TIME},
	{DOC_PERFORMANCE, "EquipmentID", S_EQUIPMENT, K_TEXT},
	{DOC_PERFORMANCE, "MaterialDefinitionID", S_MATERIAL, K_TEXT},
	{DOC_PERFORMANCE, "MaterialLotID", S_LOT, K_TEXT},
	{DOC_PERFORMANCE, "MaterialUse", S_MATERIAL_USE, K_TEXT},
	{DOC_PERFORMANCE, "Quantity", S_QUANTITY, K_TEXT},
	{DOC_PERFORMANCE, "UnitOfMeasure", S_UNIT, K_TEXT},
	{DOC_PERFORMANCE, "SegmentState", S_SEGMENT_STATE, K_TEXT},
	{DOC_PERFORMANCE, "ResponseState", S_REQUEST_STATE, K_TEXT},
};

/* the canonical staging tables' columns (doc/b2mml.md, "Mappings") */
static const char *const schedule_defaults[][2] = {
	{"order_code", "ProductionRequestID"},
	{"product_code", "MaterialDefinitionID"},
	{"machine_code", "EquipmentID"},
	{"start", "EarliestStartTime"},
	{"end", "LatestEndTime"},
	{"quantity", "Quantity"},
	{"unit", "UnitOfMeasure"},
};

static const char *const performance_defaults[][2] = {
	{"order_code", "ProductionRequestID"},
	{"id", "SegmentResponseID"},
	{"event", "BookingEvent"},
	{"booked_at", "BookingTime"},
	{"machine_code", "EquipmentID"},
	{"product_code", "MaterialDefinitionID"},
	{"quantity", "Quantity"},
	{"unit", "UnitOfMeasure"},
};

/* enumerations (case-sensitive); other values become Other + OtherValue */
static const char *const material_uses[] = {
	"Consumed", "Produced", "Consumable", "Replaced Assetn",
	"Replacement Asset", "Sample", "Resurned Sample", "Carrier",
	"Returned Carrier", NULL
};
static const char *const requirement_states[] = {"Forecast", "Released", NULL};
static const char *const response_states[] = {
	"Ready", "Running", "Completed", "Aborted", "Holding", "Paused", NULL
};

/* one payload field -> target pair */
typedef struct MapPair
{
	char	   *field;			/* payload (domain) name */
	const Target *target;
} MapPair;

/* the mapping of one subscription */
typedef struct Mapping
{
	char	   *message_type;
	Document	doc;
	MapPair    *pairs;
	int			npairs;
	Oid			hook;			/* InvalidOid: the declarative mapping */
	bool		cancel_on_delete;	/* Delete of a performance -> Cancel */
} Mapping;

struct MfgB2mmlEndpoint
{
	int			id;
	Oid			owner;			/* the hook runs as this role */
	B2mmlDialect dialect;
	char	   *confirmation_code;	/* Always, OnError, Never */
	char	   *component_id;	/* "" = none */
	char	   *logical_id;		/* NULL = unique per message */
	char	   *receiver_id;	/* Receiver/LogicalID or NULL */
	char	   *release_id;		/* @releaseID */
	bool		retry_rejected;
	Mapping    *maps;
	int			nmaps;
	Mapping		fallback[2];	/* defaults, per document */
};

static const Target *
find_target(Document doc, const char *name)
{
	int			i;

	for (i = 0; i < lengthof(targets); i++)
		if (targets[i].doc == doc && strcmp(targets[i].name, name) == 0)
			return &targets[i];
	return NULL;
}

static bool
parse_document(const char *name, Document *doc)
{
	if (strcmp(name, "ProductionSchedule") == 0)
		*doc = DOC_SCHEDULE;
	else if (strcmp(name, "ProductionPerformance") == 0)
		*doc = DOC_PERFORMANCE;
	else
		return false;
	return true;
}

/* the default pairs of doc: canonical columns, then targets by own name */
static void
default_pairs(Mapping *m, Document doc)
{
	const char *const (*defs)[2] = doc == DOC_SCHEDULE ? schedule_defaults : performance_defaults;
	int			ndefs = doc == DOC_SCHEDULE ? lengthof(schedule_defaults) : lengthof(performance_defaults);
	int			i;

	m->doc = doc;
	m->pairs = palloc(sizeof(MapPair) * (ndefs + lengthof(targets)));
	m->npairs = 0;
	for (i = 0; i < lengthof(targets); i++)
	{
		if (targets[i].doc != doc)
			continue;
		m->pairs[m->npairs].field = pstrdup(targets[i].name);
		m->pairs[m->npairs++].target = &targets[i];
	}
	for (i = 0; i < ndefs; i++)
	{
		m->pairs[m->npairs].field = pstrdup(defs[i][0]);
		m->pairs[m->npairs++].target = find_target(doc, defs[i][1]);
	}
}

/* ---------------------------------------------------------------------
 * Message identity: BODID and Sender/LogicalID
 * ---------------------------------------------------------------------
 */

/* 32 bits that tell this database's BODIDs from other databases' */
static uint32
database_tag(void)
{
	struct
	{
		uint64		sysid;
		Oid			dboid;
	}			key;

	memset(&key, 0, sizeof(key));
	key.sysid = GetSystemIdentifier();
	key.dboid = MyDatabaseId;
	return hash_bytes((const unsigned char *) &key, sizeof(key));
}

/*
 * The BODID of event_id sent to endpoint_id: a version 8 UUID (RFC 9562)
 *
 *	 tag:32  endpoint[27..12]:16  ver:4 endpoint[11..0]:12  var:2 event:62
 */
static char *
encode_bodid(int endpoint_id, int64 event_id)
{
	uint32		tag = database_tag();
	uint32		ep = (uint32) endpoint_id & 0x0fffffff;
	uint64		ev = (uint64) event_id & UINT64CONST(0x3fffffffffffffff);

	return psprintf("%08x-%04x-%04x-%04x-%012llx",
					tag, (ep >> 12) & 0xffff, 0x8000 | (ep & 0x0fff),
					(unsigned) (0x8000 | ((ev >> 48) & 0x3fff)),
					(unsigned long long) (ev & UINT64CONST(0xffffffffffff)));
}

static bool
decode_bodid(const char *bodid, int *endpoint_id, int64 *event_id)
{
	unsigned int tag,
				ep_hi,
				ep_lo,
				ev_hi;
	unsigned long long ev_lo;
	int			n = 0;

	if (bodid == NULL ||
		sscanf(bodid, "%8x-%4x-%4x-%4x-%12llx%n", &tag, &ep_hi, &ep_lo,
			   &ev_hi, &ev_lo, &n) != 5 || n != 36 || bodid[36] != '\0')
		return false;
	if (tag != database_tag() || (ep_lo & 0xf000) != 0x8000 || (ev_hi & 0xc000) != 0x8000)
		return false;
	*endpoint_id = (int) ((ep_hi << 12) | (ep_lo & 0x0fff));
	*event_id = (int64) ((((uint64) ev_hi & 0x3fff) << 48) | ev_lo);
	return true;
}

/* the unique Sender/LogicalID (when the endpoint sets none) */
static char *
encode_logical_id(int endpoint_id, int64 event_id)
{
	return psprintf("mfgsync-%d-" INT64_FORMAT, endpoint_id, event_id);
}

static bool
decode_logical_id(const char *lid, int *endpoint_id, int64 *event_id)
{
	long long	ev;
	int			n = 0;

	if (lid == NULL ||
		sscanf(lid, "mfgsync-%d-%lld%n", endpoint_id, &ev, &n) != 2 ||
		lid[n] != '\0' || *endpoint_id <= 0 || ev <= 0)
		return false;
	*event_id = (int64) ev;
	return true;
}

/* ---------------------------------------------------------------------
 * Endpoint settings and mappings
 * ---------------------------------------------------------------------
 */

static char *
spi_text(int row, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* pairs of an explicit mapping (a jsonb object field -> target) */
static void
mapping_pairs(Mapping *m, Jsonb *mapping)
{
	JsonbIterator *it = JsonbIteratorInit(&mapping->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *field = NULL;

	m->pairs = palloc(sizeof(MapPair) * (JB_ROOT_COUNT(mapping) + 1));
	m->npairs = 0;
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			field = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && v.type == jbvString)
		{
			char	   *name = pnstrdup(v.val.string.val, v.val.string.len);
			const Target *t = find_target(m->doc, name);

			/* b2mml_map() checked them; a bad one is skipped, not guessed */
			if (t != NULL)
			{
				m->pairs[m->npairs].field = field;
				m->pairs[m->npairs++].target = t;
			}
		}
	}
}

/*
 * mfgsync_b2mml_load
 *		The B2MML settings and subscription mappings of an endpoint, read
 *		with SPI (the caller has connected it, in a transaction), allocated
 *		in cxt.  Raises undefined_object if the endpoint does not exist.
 */
MfgB2mmlEndpoint *
mfgsync_b2mml_load(int endpoint_id, MemoryContext cxt)
{
	MemoryContext oldcxt;
	MfgB2mmlEndpoint *bep;
	Datum		args[1] = {Int32GetDatum(endpoint_id)};
	Oid			types[1] = {INT4OID};
	bool		isnull;
	char	   *dialect;
	uint64		i;
	int			rc;

	rc = SPI_execute_with_args("SELECT e.owner::oid, o->>'dialect', o->>'confirmation_code', "
							   "       coalesce(o->>'component_id', current_setting('mfgsync.b2mml_component_id')), "
							   "       o->>'logical_id', o->>'receiver_logical_id', "
							   "       coalesce(o->>'release_id', 'B2MML-V0600'), "
							   "       coalesce((o->>'retry_rejected')::boolean, false) "
							   "  FROM mfgsync.endpoint e CROSS JOIN LATERAL "
							   "       mfgsync.endpoint_options(e.format, e.options) o "
							   " WHERE e.id = $1",
							   1, types, args, NULL, true, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading a B2MML endpoint");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("endpoint %d does not exist", endpoint_id)));

	oldcxt = MemoryContextSwitchTo(cxt);
	bep = palloc0(sizeof(MfgB2mmlEndpoint));
	bep->id = endpoint_id;
	bep->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	dialect = spi_text(0, 2, cxt);
	bep->dialect = dialect == NULL || strcmp(dialect, "xml") == 0 ? B2MML_XML :
		strcmp(dialect, "json-mesa") == 0 ? B2MML_JSON_MESA : B2MML_JSON_EDINN;
	bep->confirmation_code = spi_text(0, 3, cxt);
	if (bep->confirmation_code == NULL)
		bep->confirmation_code = pstrdup("Always");
	bep->component_id = spi_text(0, 4, cxt);
	bep->logical_id = spi_text(0, 5, cxt);
	bep->receiver_id = spi_text(0, 6, cxt);
	bep->release_id = spi_text(0, 7, cxt);
	bep->retry_rejected = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 8, &isnull));
	default_pairs(&bep->fallback[DOC_SCHEDULE], DOC_SCHEDULE);
	default_pairs(&bep->fallback[DOC_PERFORMANCE], DOC_PERFORMANCE);
	bep->fallback[DOC_PERFORMANCE].cancel_on_delete = true;
	MemoryContextSwitchTo(oldcxt);

	rc = SPI_execute_with_args("SELECT s.message_type, coalesce(m.document, 'ProductionSchedule'), "
							   "       m.mapping, m.hook::oid, coalesce(m.cancel_on_delete, true) "
							   "  FROM mfgsync.subscription s "
							   "  LEFT JOIN mfgsync.b2mml_mapping m "
							   "         ON m.endpoint_id = s.endpoint_id AND m.message_type = s.message_type "
							   " WHERE s.endpoint_id = $1",
							   1, types, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading B2MML mappings");

	oldcxt = MemoryContextSwitchTo(cxt);
	bep->maps = palloc0(sizeof(Mapping) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Mapping    *m = &bep->maps[bep->nmaps++];
		Document	doc = DOC_SCHEDULE;
		Datum		d;

		m->message_type = spi_text(i, 1, cxt);
		(void) parse_document(SPI_getvalue(tup, desc, 2), &doc);
		m->doc = doc;
		d = SPI_getbinval(tup, desc, 4, &isnull);
		m->hook = isnull ? InvalidOid : DatumGetObjectId(d);
		m->cancel_on_delete = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		if (isnull)
		{
			default_pairs(m, doc);
			m->cancel_on_delete = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		}
		else
			mapping_pairs(m, DatumGetJsonbP(d));
	}
	MemoryContextSwitchTo(oldcxt);
	return bep;
}

const char *
mfgsync_b2mml_content_type(const MfgB2mmlEndpoint *bep)
{
	return bep->dialect == B2MML_XML ? "application/xml; charset=utf-8" :
		"application/json";
}

/* does a missing or unparsable reply count as a failure? */
bool
mfgsync_b2mml_confirm_required(const MfgB2mmlEndpoint *bep)
{
	return strcmp(bep->confirmation_code, "Always") == 0;
}

bool
mfgsync_b2mml_retry_rejected(const MfgB2mmlEndpoint *bep)
{
	return bep->retry_rejected;
}

/* ---------------------------------------------------------------------
 * Rendering
 * ---------------------------------------------------------------------
 */

/* one value to place, with what the payload said about it */
typedef struct SlotValue
{
	char	   *text;			/* NULL: absent */
	bool		numeric;		/* a JSON number */
	const char *field;			/* the payload field, for errors */
} SlotValue;

/* refuse what XML 1.0 cannot carry; returns s converted to UTF-8 */
static char *
xml_text(const char *field, const char *s)
{
	const unsigned char *p;
	char	   *utf8 = (char *) pg_do_encoding_conversion((unsigned char *) s, strlen(s),
														  GetDatabaseEncoding(), PG_UTF8);

	for (p = (const unsigned char *) utf8; *p; p++)
		if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("value of field \"%s\" contains a control character (0x%02x)", field, *p),
					 errhint(BAD_XML_HINT)));
	return utf8;
}

/* a date-time as xs:dateTime in UTC ("...Z"); raises on other text */
static char *
xml_datetime(const char *field, const char *s)
{
	TimestampTz ts;
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[64];
	int			len;

	ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("value of field \"%s\" cannot be written as an xs:dateTime: \"%s\"", field, s),
				 errdetail("B2MML date-times are between the years 1 and 9999.")));
	len = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
				   tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (fsec != 0)
	{
		len += snprintf(buf + len, sizeof(buf) - len, ".%06d", (int) fsec);
		while (buf[len - 1] == '0')
			buf[--len] = '\0';
	}
	snprintf(buf + len, sizeof(buf) - len, "Z");
	return pstrdup(buf);
}

static bool
is_decimal(const char *s)
{
	const char *p = s;
	bool		digits = false;

	if (*p == '-' || *p == '+')
		p++;
	while (isdigit((unsigned char) *p))
		p++, digits = true;
	if (*p == '.')
		for (p++; isdigit((unsigned char) *p); p++)
			digits = true;
	return digits && *p == '\0';
}

/* the value of field in the payload object, or NULL */
static char *
payload_value(Jsonb *payload, const char *field, bool *numeric)
{
	JsonbValue	v;
	JsonbValue *res;

	*numeric = false;
	if (payload == NULL || !JB_ROOT_IS_OBJECT(payload))
		return NULL;
	res = getKeyJsonValueFromContainer(&payload->root, field, strlen(field), &v);
	if (res == NULL)
		return NULL;
	switch (res->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(res->val.string.val, res->val.string.len);
		case jbvNumeric:
			*numeric = true;
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(res->val.numeric)));
		case jbvBool:
			return pstrdup(res->val.boolean ? "true" : "false");
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("field \"%s\" is not a scalar and cannot be mapped to a B2MML element", field),
					 errhint("Map scalar fields, or build the document with a hook function.")));
	}
	return NULL;
}

/* error context: which field's value was being read */
static void
field_context(void *arg)
{
	errcontext("B2MML field \"%s\"", (const char *) arg);
}

/* fill vals from the payload through the mapping; first value wins */
static void
fill_slots(const Mapping *m, Jsonb *payload, SlotValue *vals)
{
	ErrorContextCallback errcb;
	int			i;

	errcb.callback = field_context;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	memset(vals, 0, sizeof(SlotValue) * NSLOTS);
	for (i = 0; i < m->npairs; i++)
	{
		const Target *t = m->pairs[i].target;
		SlotValue  *sv = &vals[t->slot];
		bool		numeric;
		char	   *v;

		if (sv->text != NULL)
			continue;
		errcb.arg = (void *) m->pairs[i].field;
		v = payload_value(payload, m->pairs[i].field, &numeric);
		if (v == NULL || v[0] == '\0')
			continue;
		sv->field = m->pairs[i].field;
		sv->numeric = numeric;
		if (t->kind == K_TIME)
			sv->text = xml_datetime(sv->field, v);
		else if (t->kind == K_DECIMAL && !is_decimal(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("value of field \"%s\" is not a decimal number: \"%s\"", sv->field, v),
					 errdetail("It is mapped to %s, an xs:decimal.", t->name)));
		else
			sv->text = xml_text(sv->field, v);
	}
	error_context_stack = errcb.previous;
}

static void
add_value(xmlNodePtr parent, const char *name, SlotValue *v)
{
	if (v->text)
		mfgsync_b2mml_add(parent, name, v->text);
}

/* an enumerated element: the value, or Other with OtherValue */
static void
add_enum(xmlNodePtr parent, const char *name, const char *value,
		 const char *const *allowed)
{
	const char *const *a;
	xmlNodePtr	n;

	if (value == NULL)
		return;
	for (a = allowed; *a; a++)
		if (strcmp(*a, value) == 0)
		{
			mfgsync_b2mml_add(parent, name, value);
			return;
		}
	n = mfgsync_b2mml_add(parent, name, "Other");
	xmlSetProp(n, (const xmlChar *) "OtherValue", (const xmlChar *) value);
}

static bool
any_value(SlotValue *vals, const Slot *slots, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (vals[slots[i]].text != NULL)
			return true;
	return false;
}

/* Material{Requirement,Actual}: IDs, MaterialUse, Quantity */
static void
add_material(xmlNodePtr parent, const char *name, SlotValue *vals)
{
	static const Slot slots[] = {S_MATERIAL, S_LOT, S_QUANTITY};
	xmlNodePtr	m;

	if (!any_value(vals, slots, lengthof(slots)))
		return;
	m = mfgsync_b2mml_add(parent, name, NULL);
	add_value(m, "MaterialDefinitionID", &vals[S_MATERIAL]);
	add_value(m, "MaterialLotID", &vals[S_LOT]);
	add_enum(m, "MaterialUse", vals[S_MATERIAL_USE].text ? vals[S_MATERIAL_USE].text : "Produced",
			 material_uses);
	if (vals[S_QUANTITY].text)
	{
		xmlNodePtr	q = mfgsync_b2mml_add(m, "Quantity", NULL);

		mfgsync_b2mml_add(q, "QuantityString", vals[S_QUANTITY].text);
		if (vals[S_QUANTITY].numeric)
			mfgsync_b2mml_add(q, "DataType", "decimal");
		add_value(q, "UnitOfMeasure", &vals[S_UNIT]);
	}
}

/* DataArea/ProductionSchedule from the declarative mapping */
static void
build_schedule(xmlNodePtr data, SlotValue *vals)
{
	static const Slot segment[] = {S_SEGMENT_ID, S_PRODUCT_SEGMENT, S_PROCESS_SEGMENT,
		S_SEGMENT_DESCRIPTION, S_EARLIEST, S_LATEST, S_EQUIPMENT, S_MATERIAL, S_LOT,
	S_QUANTITY, S_SEGMENT_STATE};
	xmlNodePtr	ps = mfgsync_b2mml_add(data, "ProductionSchedule", NULL);
	xmlNodePtr	pr;

	add_value(ps, "ID", &vals[S_SCHEDULE_ID]);
	pr = mfgsync_b2mml_add(ps, "ProductionRequest", NULL);
	add_value(pr, "ID", &vals[S_REQUEST_ID]);
	add_value(pr, "Description", &vals[S_DESCRIPTION]);
	add_value(pr, "StartTime", &vals[S_START]);
	add_value(pr, "EndTime", &vals[S_END]);
	add_value(pr, "Priority", &vals[S_PRIORITY]);
	if (any_value(vals, segment, lengthof(segment)))
	{
		xmlNodePtr	sr = mfgsync_b2mml_add(pr, "SegmentRequirement", NULL);

		add_value(sr, "ID", &vals[S_SEGMENT_ID]);
		add_value(sr, "ProductSegmentID", &vals[S_PRODUCT_SEGMENT]);
		add_value(sr, "ProcessSegmentID", &vals[S_PROCESS_SEGMENT]);
		add_value(sr, "Description", &vals[S_SEGMENT_DESCRIPTION]);
		add_value(sr, "EarliestStartTime", &vals[S_EARLIEST]);
		add_value(sr, "LatestEndTime", &vals[S_LATEST]);
		if (vals[S_EQUIPMENT].text)
			mfgsync_b2mml_add(mfgsync_b2mml_add(sr, "EquipmentRequirement", NULL), "EquipmentID", vals[S_EQUIPMENT].text);
		add_material(sr, "MaterialRequirement", vals);
		add_enum(sr, "SegmentState", vals[S_SEGMENT_STATE].text, requirement_states);
	}
	add_enum(pr, "RequestState", vals[S_REQUEST_STATE].text, requirement_states);
}

/* DataArea/ProductionPerformance; a cancel carries only the IDs */
static void
build_performance(xmlNodePtr data, SlotValue *vals, bool cancel)
{
	static const Slot segment[] = {S_SEGMENT_ID, S_PROCESS_SEGMENT, S_PRODUCT_SEGMENT,
		S_SEGMENT_DESCRIPTION, S_ACTUAL_START, S_ACTUAL_END, S_BOOKING_EVENT,
	S_EQUIPMENT, S_MATERIAL, S_LOT, S_QUANTITY, S_SEGMENT_STATE};
	xmlNodePtr	pp = mfgsync_b2mml_add(data, "ProductionPerformance", NULL);
	xmlNodePtr	pr;
	const char *state = vals[S_SEGMENT_STATE].text;
	char	   *start = vals[S_ACTUAL_START].text;
	char	   *end = vals[S_ACTUAL_END].text;

	/* a booking: START/END at a time */
	if (vals[S_BOOKING_EVENT].text)
	{
		const char *ev = vals[S_BOOKING_EVENT].text;

		if (pg_strcasecmp(ev, "START") == 0)
		{
			start = start ? start : vals[S_BOOKING_TIME].text;
			state = state ? state : "Running";
		}
		else if (pg_strcasecmp(ev, "END") == 0)
		{
			end = end ? end : vals[S_BOOKING_TIME].text;
			state = state ? state : "Completed";
		}
		else
			state = state ? state : ev;
	}

	add_value(pp, "ID", &vals[S_PERFORMANCE_ID]);
	add_value(pp, "ProductionScheduleID", &vals[S_SCHEDULE_ID]);
	pr = mfgsync_b2mml_add(pp, "ProductionResponse", NULL);
	add_value(pr, "ID", &vals[S_RESPONSE_ID]);
	add_value(pr, "ProductionRequestID", &vals[S_REQUEST_ID]);
	if (!cancel)
	{
		add_value(pr, "StartTime", &vals[S_START]);
		add_value(pr, "EndTime", &vals[S_END]);
	}
	if (cancel ? vals[S_SEGMENT_ID].text != NULL : any_value(vals, segment, lengthof(segment)))
	{
		xmlNodePtr	sr = mfgsync_b2mml_add(pr, "SegmentResponse", NULL);

		add_value(sr, "ID", &vals[S_SEGMENT_ID]);
		if (!cancel)
		{
			add_value(sr, "ProcessSegmentID", &vals[S_PROCESS_SEGMENT]);
			add_value(sr, "ProductSegmentID", &vals[S_PRODUCT_SEGMENT]);
			add_value(sr, "Description", &vals[S_SEGMENT_DESCRIPTION]);
			if (start)
				mfgsync_b2mml_add(sr, "ActualStartTime", start);
			if (end)
				mfgsync_b2mml_add(sr, "ActualEndTime", end);
			if (vals[S_EQUIPMENT].text)
				mfgsync_b2mml_add(mfgsync_b2mml_add(sr, "EquipmentActual", NULL), "EquipmentID", vals[S_EQUIPMENT].text);
			add_material(sr, "MaterialActual", vals);
			add_enum(sr, "SegmentState", state, response_states);
		}
	}
	if (!cancel)
		add_enum(pr, "ResponseState", vals[S_REQUEST_STATE].text, response_states);
}

/*
 * The hook's nouns: call it with the event's mfgsync.events row as the
 * endpoint's owner, parse the xml it returns, and move its elements (which
 * must all be the document's noun) under data.
 */
/* call hook(row) as role; NULL when it returns null */
static text *
call_hook(Oid hook, Datum row, Oid role)
{
	Oid			save_userid;
	int			save_sec_context;
	LOCAL_FCINFO(fcinfo, 1);
	FmgrInfo	flinfo;
	volatile Datum result = (Datum) 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		fmgr_info(hook, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = row;
		fcinfo->args[0].isnull = false;
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	return fcinfo->isnull ? NULL : DatumGetTextPP(result);
}

/* move the elements under frag's root to data; they must all be noun */
static int
move_nouns(xmlDocPtr frag, xmlNodePtr data, Oid hook, const char *noun)
{
	xmlNodePtr	c;
	int			nnouns = 0;

	for (c = xmlDocGetRootElement(frag)->children; c; c = c->next)
	{
		bool		in_ns;

		if (c->type == XML_TEXT_NODE && xmlIsBlankNode(c))
			continue;
		in_ns = mfgsync_b2mml_is_element(c, NULL) && c->ns != NULL &&
			strcmp((const char *) c->ns->href, MFGSYNC_B2MML_NS) == 0;
		if (!mfgsync_b2mml_is_element(c, noun) || !in_ns)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_XML_CONTENT),
					 errmsg("B2MML hook function %s must return %s elements only",
							format_procedure(hook), noun),
					 mfgsync_b2mml_is_element(c, NULL) ?
					 errdetail("It returned an element %s%s.", (const char *) c->name,
							   in_ns ? "" : " outside the B2MML V0600 namespace") :
					 errdetail("It returned text or other content beside the elements.")));
		xmlAddChild(data, xmlDocCopyNode(c, data->doc, 1));
		nnouns++;
	}
	return nnouns;
}

/*
 * The hook's nouns: call it with the event's mfgsync.events row as the
 * endpoint's owner, parse the xml it returns, and copy its elements (which
 * must all be the document's noun) under data.
 */
static void
add_hook_nouns(xmlNodePtr data, const MfgB2mmlEndpoint *bep, const Mapping *m,
			   const MfgEvent *ev, const char *noun)
{
	Datum		args[1] = {Int64GetDatum(ev->id)};
	Oid			types[1] = {INT8OID};
	bool		isnull;
	text	   *result;
	char	   *xml;
	char	   *wrapped;
	char	   *why = NULL;
	B2mmlDialect dialect;
	xmlDocPtr	frag;
	volatile int nnouns = 0;
	int			rc;

	if (pg_proc_aclcheck(m->hook, bep->owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for B2MML hook function %s", format_procedure(m->hook)),
				 errdetail("Hooks run as the endpoint's owner.")));

	rc = SPI_execute_with_args("SELECT e FROM mfgsync.events e WHERE e.id = $1",
							   1, types, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("event " INT64_FORMAT " is not in the outbox", ev->id)));
	result = call_hook(m->hook,
					   SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
					   bep->owner);
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("B2MML hook function %s returned null", format_procedure(m->hook))));
	xml = xml_text("(hook)", text_to_cstring(result));

	/* a fragment: the nouns, in the B2MML namespace unless they say another */
	wrapped = psprintf("<mfgsync-hook xmlns=\"%s\">%s</mfgsync-hook>", MFGSYNC_B2MML_NS, xml);
	frag = mfgsync_b2mml_read(wrapped, strlen(wrapped), "UTF-8", &dialect, &why);
	if (frag == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("B2MML hook function %s returned malformed XML", format_procedure(m->hook))));
	PG_TRY();
	{
		nnouns = move_nouns(frag, data, m->hook, noun);
	}
	PG_FINALLY();
	{
		xmlFreeDoc(frag);
	}
	PG_END_TRY();
	if (nnouns == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_CONTENT),
				 errmsg("B2MML hook function %s returned no %s element", format_procedure(m->hook), noun)));
	xmlReconciliateNs(data->doc, xmlDocGetRootElement(data->doc));
}

static const Mapping *
find_mapping(const MfgB2mmlEndpoint *bep, const char *message_type)
{
	int			i;

	for (i = 0; i < bep->nmaps; i++)
		if (strcmp(bep->maps[i].message_type, message_type) == 0)
			return &bep->maps[i];
	return &bep->fallback[DOC_SCHEDULE];
}

/* the CreationDateTime: the event's created_at (a JSON string) in UTC */
static char *
creation_time(const MfgEvent *ev)
{
	const char *t = ev->time;
	int			len = strlen(t);

	if (len >= 2 && t[0] == '"')
		return xml_datetime("created_at", pnstrdup(t + 1, len - 2));
	return xml_datetime("created_at", t);
}

/* the document of ev, as a tree (the caller frees it) */
static xmlDocPtr
build_document(MfgB2mmlEndpoint *bep, const MfgEvent *ev)
{
	const Mapping *m = find_mapping(bep, ev->message_type);
	bool		is_delete = strcmp(ev->action, MFGSYNC_ACTION_DELETE) == 0;
	volatile bool cancel = m->doc == DOC_PERFORMANCE && is_delete && m->cancel_on_delete;
	const char *noun = m->doc == DOC_SCHEDULE ? "ProductionSchedule" : "ProductionPerformance";
	const char *payload_text = is_delete || ev->data == NULL ? ev->old_data : ev->data;
	Jsonb	   *payload = NULL;
	SlotValue	vals[NSLOTS];
	xmlDocPtr	volatile doc = NULL;
	char	   *rootname;
	char	   *created;

	if (strcmp(ev->action, MFGSYNC_ACTION_ADD) != 0 &&
		strcmp(ev->action, MFGSYNC_ACTION_CHANGE) != 0 && !is_delete)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("event " INT64_FORMAT " with action \"%s\" has no B2MML form", ev->id, ev->action),
				 errdetail("B2MML messages carry the actions Add, Change and Delete.")));

	created = creation_time(ev);
	if (!OidIsValid(m->hook))
	{
		if (payload_text == NULL)
			payload_text = ev->key;
		if (payload_text != NULL)
			payload = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(payload_text)));
		fill_slots(m, payload, vals);
	}
	rootname = psprintf("%s%s", cancel ? "Cancel" : "Sync", noun);

	PG_TRY();
	{
		xmlNodePtr	root;
		xmlNodePtr	app;
		xmlNodePtr	sender;
		xmlNodePtr	data;

		doc = xmlNewDoc((const xmlChar *) "1.0");
		root = xmlNewDocNode(doc, NULL, (const xmlChar *) rootname, NULL);
		xmlDocSetRootElement(doc, root);
		xmlSetNs(root, xmlNewNs(root, (const xmlChar *) MFGSYNC_B2MML_NS, NULL));
		xmlSetProp(root, (const xmlChar *) "releaseID", (const xmlChar *) bep->release_id);

		app = mfgsync_b2mml_add(root, "ApplicationArea", NULL);
		sender = mfgsync_b2mml_add(app, "Sender", NULL);
		mfgsync_b2mml_add(sender, "LogicalID", bep->logical_id ? bep->logical_id :
			encode_logical_id(bep->id, ev->id));
		if (bep->component_id && bep->component_id[0])
			mfgsync_b2mml_add(sender, "ComponentID", bep->component_id);
		mfgsync_b2mml_add(sender, "ConfirmationCode", bep->confirmation_code);
		if (bep->receiver_id)
			mfgsync_b2mml_add(mfgsync_b2mml_add(app, "Receiver", NULL), "LogicalID", bep->receiver_id);
		mfgsync_b2mml_add(app, "CreationDateTime", created);
		mfgsync_b2mml_add(app, "BODID", encode_bodid(bep->id, ev->id));

		data = mfgsync_b2mml_add(root, "DataArea", NULL);
		if (cancel)
			mfgsync_b2mml_add(data, "Cancel", NULL);
		else
		{
			xmlNodePtr	expr = mfgsync_b2mml_add(mfgsync_b2mml_add(mfgsync_b2mml_add(data, "Sync", NULL), "ActionCriteria", NULL),
								   "ActionExpression", NULL);

			xmlSetProp(expr, (const xmlChar *) "actionCode", (const xmlChar *) ev->action);
		}
		if (OidIsValid(m->hook))
			add_hook_nouns(data, bep, m, ev, noun);
		else if (m->doc == DOC_SCHEDULE)
			build_schedule(data, vals);
		else
			build_performance(data, vals, cancel);
	}
	PG_CATCH();
	{
		if (doc)
			xmlFreeDoc(doc);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return doc;
}

/*
 * mfgsync_b2mml_render_event
 *		The body the endpoint gets for ev, in its dialect; palloc'd in
 *		CurrentMemoryContext, length in *len.  In a transaction, with SPI
 *		connected when the mapping has a hook.  Raises when the event cannot
 *		be rendered (bad value, hook failure, Truncate).
 */
char *
mfgsync_b2mml_render_event(MfgB2mmlEndpoint *bep, const MfgEvent *ev, int *len)
{
	xmlDocPtr	doc = build_document(bep, ev);
	char	   *volatile result = NULL;

	PG_TRY();
	{
		result = mfgsync_b2mml_doc_to_json(doc, bep->dialect);
	}
	PG_FINALLY();
	{
		xmlFreeDoc(doc);
	}
	PG_END_TRY();
	*len = strlen(result);
	return result;
}

/* ---------------------------------------------------------------------
 * Late ConfirmBOD
 * ---------------------------------------------------------------------
 */

/*
 * mfgsync_b2mml_settle_confirm
 *		Settle the message a ConfirmBOD answers, as a synchronous reply
 *		would: Accepted clears its pending retry (and an "exhausted" dead
 *		letter); Rejected makes it a "rejected" dead letter with the
 *		Description and Note.  The message is found by OriginalApplicationArea
 *		BODID, else Sender/LogicalID, as mfgsync wrote them.
 *
 * In a transaction (uses SPI).  Returns false, with *why (palloc'd), when
 * the ConfirmBOD names no message this database sent; true with *why
 * saying what was done otherwise.
 */
bool
mfgsync_b2mml_settle_confirm(xmlDocPtr confirmbod, char **why)
{
	MfgB2mmlConfirm c;
	int			endpoint_id;
	int64		event_id;
	Datum		args[5];
	Oid			types[5] = {INT4OID, INT8OID, TEXTOID, TEXTOID, TEXTOID};
	char		nulls[5] = "     ";
	char	   *name;
	int			rc;
	bool		matched;
	MemoryContext callercxt = CurrentMemoryContext;

	mfgsync_b2mml_read_confirm(confirmbod, &c);
	if (c.verdict == MFG_B2MML_NO_CONFIRM)
	{
		*why = c.error;
		return false;
	}
	if (!decode_bodid(c.bodid, &endpoint_id, &event_id) &&
		!decode_logical_id(c.logical_id, &endpoint_id, &event_id))
	{
		*why = psprintf("the ConfirmBOD's OriginalApplicationArea (BODID %s, LogicalID %s) names no message of this database",
						c.bodid ? c.bodid : "none", c.logical_id ? c.logical_id : "none");
		return false;
	}

	mfgsync_check_spi(SPI_connect(), SPI_OK_CONNECT, "SPI_connect");
	args[0] = Int32GetDatum(endpoint_id);
	args[1] = Int64GetDatum(event_id);
	rc = SPI_execute_with_args("SELECT e.name FROM mfgsync.endpoint e "
							   " WHERE e.id = $1 AND e.format = 'b2mml' "
							   "   AND EXISTS (SELECT 1 FROM mfgsync.outbox o WHERE o.id = $2)",
							   2, types, args, NULL, true, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading endpoints");
	matched = SPI_processed == 1;
	name = matched ? pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)) : NULL;

	if (!matched)
		*why = psprintf("no B2MML endpoint %d with event " INT64_FORMAT " in the outbox",
						endpoint_id, event_id);
	else if (c.verdict == MFG_B2MML_ACCEPTED)
	{
		rc = SPI_execute_with_args("WITH r AS (DELETE FROM mfgsync.retry "
								   "            WHERE endpoint_id = $1 AND event_id = $2 RETURNING 1), "
								   "     d AS (DELETE FROM mfgsync.dead_letter "
								   "            WHERE endpoint_id = $1 AND event_id = $2 "
								   "              AND reason = 'exhausted' RETURNING 1) "
								   "UPDATE mfgsync.endpoint_state "
								   "   SET delivered = delivered + (SELECT count(*) FROM r) + (SELECT count(*) FROM d), "
								   "       dead = dead - (SELECT count(*) FROM d) "
								   " WHERE endpoint_id = $1 AND shard = 0",
								   2, types, args, NULL, false, 0);
		mfgsync_check_spi(rc, SPI_OK_UPDATE, "settling a ConfirmBOD");
		*why = psprintf("event " INT64_FORMAT " accepted by the receiver of endpoint \"%s\"",
						event_id, name);
	}
	else
	{
		args[2] = CStringGetTextDatum(c.description ? c.description : "");
		nulls[2] = c.description ? ' ' : 'n';
		args[3] = CStringGetTextDatum(c.note ? c.note : "");
		nulls[3] = c.note ? ' ' : 'n';
		args[4] = CStringGetTextDatum(psprintf("rejected by the receiver (late ConfirmBOD)%s%s",
											   c.description ? ": " : "",
											   c.description ? c.description : ""));
		rc = SPI_execute_with_args("WITH r AS (DELETE FROM mfgsync.retry "
								   "            WHERE endpoint_id = $1 AND event_id = $2 RETURNING attempts), "
								   "     d AS (INSERT INTO mfgsync.dead_letter AS dl (endpoint_id, event_id, "
								   "               attempts, last_error, reason, description, note) "
								   "           VALUES ($1, $2, coalesce((SELECT attempts FROM r), 1), $5, "
								   "                   'rejected', $3, $4) "
								   "           ON CONFLICT (endpoint_id, event_id) DO UPDATE "
								   "           SET reason = 'rejected', last_error = $5, description = $3, "
								   "               note = $4, dead_at = now() "
								   "           RETURNING (xmax = 0) AS inserted) "
								   "UPDATE mfgsync.endpoint_state "
								   "   SET dead = dead + (SELECT count(*) FROM d WHERE inserted) "
								   " WHERE endpoint_id = $1 AND shard = 0",
								   5, types, args, nulls, false, 0);
		mfgsync_check_spi(rc, SPI_OK_UPDATE, "settling a ConfirmBOD");
		*why = psprintf("event " INT64_FORMAT " rejected by the receiver of endpoint \"%s\"",
						event_id, name);
	}
	if (matched)
	{
		/* the sender re-reads its parked keys */
		rc = SPI_execute("SELECT mfgsync.notify_senders()", false, 0);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "notifying senders");
	}
	*why = MemoryContextStrdup(callercxt, *why);
	SPI_finish();
	return matched;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/* per call site: the endpoint last rendered for, while it is unchanged */
typedef struct RenderCache
{
	char	   *endpoint;
	int			endpoint_id;
	TransactionId xid;
	CommandId	cid;
	MfgB2mmlEndpoint *bep;
	MemoryContext cxt;
} RenderCache;

/*
 * mfgsync_b2mml_render
 *		SQL: b2mml_render(event_id bigint, endpoint text) RETURNS text, the
 *		exact document the endpoint gets for the event.
 *
 * The endpoint's settings are cached for the rest of the statement.
 */
Datum
mfgsync_b2mml_render(PG_FUNCTION_ARGS)
{
	int64		event_id = PG_GETARG_INT64(0);
	char	   *endpoint = text_to_cstring(PG_GETARG_TEXT_PP(1));
	RenderCache *cache = (RenderCache *) fcinfo->flinfo->fn_extra;
	Datum		args[2];
	Oid			types[2] = {TEXTOID, INT8OID};
	MfgEvent	ev;
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	text	   *result;
	char	   *doc;
	int			len;
	int			rc;

	mfgsync_check_spi(SPI_connect(), SPI_OK_CONNECT, "SPI_connect");

	if (cache == NULL || strcmp(cache->endpoint, endpoint) != 0 ||
		cache->xid != GetTopTransactionIdIfAny() ||
		cache->cid != GetCurrentCommandId(false))
	{
		bool		isnull;

		if (cache == NULL)
		{
			cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(RenderCache));
			cache->cxt = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "mfgsync b2mml render",
											   ALLOCSET_SMALL_SIZES);
			fcinfo->flinfo->fn_extra = cache;
		}
		MemoryContextReset(cache->cxt);
		cache->bep = NULL;
		args[0] = CStringGetTextDatum(endpoint);
		rc = SPI_execute_with_args("SELECT e.id, e.format FROM mfgsync.endpoint e WHERE e.name = $1",
								   1, types, args, NULL, true, 1);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "reading endpoints");
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("endpoint \"%s\" does not exist", endpoint)));
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "b2mml") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("endpoint \"%s\" does not have format \"b2mml\"", endpoint)));
		cache->endpoint_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 1, &isnull));
		cache->bep = mfgsync_b2mml_load(cache->endpoint_id, cache->cxt);
		cache->endpoint = MemoryContextStrdup(cache->cxt, endpoint);
		cache->xid = GetTopTransactionIdIfAny();
		cache->cid = GetCurrentCommandId(false);
	}

	mfgsync_outbox_read_event(event_id, &ev);

	doc = mfgsync_b2mml_render_event(cache->bep, &ev, &len);
	spicxt = MemoryContextSwitchTo(callercxt);
	result = cstring_to_text_with_len(doc, len);
	MemoryContextSwitchTo(spicxt);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/* parse a message for a SQL function; raises on text that is neither */
static xmlDocPtr
parse_or_raise(text *message)
{
	char	   *error = NULL;
	B2mmlDialect dialect;
	xmlDocPtr	doc = mfgsync_b2mml_read(VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message),
										 NULL, &dialect, &error);

	if (doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_XML_DOCUMENT),
				 errmsg("invalid B2MML message: %s", error)));
	return doc;
}

/*
 * mfgsync_b2mml_confirm
 *		SQL: b2mml_confirm(message text) RETURNS boolean: settle the message
 *		a ConfirmBOD (XML or JSON) answers; false when it names none (with a
 *		NOTICE saying why).
 */
Datum
mfgsync_b2mml_confirm(PG_FUNCTION_ARGS)
{
	xmlDocPtr	doc = parse_or_raise(PG_GETARG_TEXT_PP(0));
	char	   *why = NULL;
	volatile bool matched = false;

	PG_TRY();
	{
		xmlNodePtr	root = xmlDocGetRootElement(doc);

		if (strcmp((const char *) root->name, "ConfirmBOD") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("message is a %s, not a ConfirmBOD", (const char *) root->name)));
		matched = mfgsync_b2mml_settle_confirm(doc, &why);
	}
	PG_FINALLY();
	{
		xmlFreeDoc(doc);
	}
	PG_END_TRY();
	if (!matched)
		ereport(NOTICE,
				(errmsg("ConfirmBOD not settled: %s", why)));
	PG_RETURN_BOOL(matched);
}

/*
 * mfgsync_b2mml_convert
 *		SQL: b2mml_convert(message text, dialect text) RETURNS text: a
 *		message (XML or JSON) in the given dialect (xml, json-mesa,
 *		json-edinn).
 */
Datum
mfgsync_b2mml_convert(PG_FUNCTION_ARGS)
{
	char	   *dialect = text_to_cstring(PG_GETARG_TEXT_PP(1));
	B2mmlDialect d;
	xmlDocPtr	doc;
	char	   *volatile result = NULL;

	if (strcmp(dialect, "xml") == 0)
		d = B2MML_XML;
	else if (strcmp(dialect, "json-mesa") == 0)
		d = B2MML_JSON_MESA;
	else if (strcmp(dialect, "json-edinn") == 0)
		d = B2MML_JSON_EDINN;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid B2MML dialect \"%s\"", dialect),
				 errhint("Valid dialects are: xml, json-mesa, json-edinn.")));
	doc = parse_or_raise(PG_GETARG_TEXT_PP(0));
	PG_TRY();
	{
		result = mfgsync_b2mml_doc_to_json(doc, d);
	}
	PG_FINALLY();
	{
		xmlFreeDoc(doc);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

/*
 * mfgsync_b2mml_targets
 *		SQL: b2mml_targets(document text) RETURNS SETOF text, the targets a
 *		mapping of that document may name (b2mml_map() checks against it).
 */
Datum
mfgsync_b2mml_targets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Document	doc;
	int			i;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (!parse_document(name, &doc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid B2MML document \"%s\"", name),
				 errhint("Valid documents are: ProductionSchedule, ProductionPerformance.")));
	for (i = 0; i < lengthof(targets); i++)
	{
		Datum		v;
		bool		isnull = false;

		if (targets[i].doc != doc)
			continue;
		v = CStringGetTextDatum(targets[i].name);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	return (Datum) 0;
}
