/*-------------------------------------------------------------------------
 *
 * b2mml_in.c
 *		  Inbound B2MML: mfgsync.receive_b2mml
 *
 * receive_b2mml(message) takes one B2MML V0600 message, as XML or as JSON
 * in MESA's or edinn's dialect, and answers it in the same syntax:
 *
 *	 1. read (mfgsync_b2mml_read, b2mml_read.c): XML is parsed by libxml2
 *		(no network, no DTD); JSON is turned into the same libxml2 tree the
 *		XML would give (b2mml_json.c), so everything after this step sees
 *		one kind of document;
 *	 2. check: root element, releaseID, ApplicationArea, verb and action
 *		codes here; namespace, date-times, quantities, enumerations and the
 *		XSD named by mfgsync.b2mml_schema in b2mml_check.c.  The first
 *		failure becomes the Description of a Rejected ConfirmBOD;
 *	 3. deduplicate: the key (BODID or Sender/LogicalID, mfgsync.
 *		b2mml_dedup_key) is locked for the transaction and looked up in
 *		mfgsync.inbound_message; a message seen and accepted before gets the
 *		stored answer again and changes nothing;
 *	 4. apply, in a subtransaction: upserts (Sync Add/Change) or removals
 *		(Sync Delete, Cancel) of the mapped elements through SPI, parents
 *		before children (children before parents for removals); a ConfirmBOD
 *		goes to mfgsync_b2mml_settle_confirm; GetMaterialInformation reads the mapped
 *		material table.  Any error in the subtransaction (a bad value, a
 *		constraint, a trigger) rolls all of it back and rejects the message
 *		with the error's text; errors that say nothing about the message
 *		(cancel, deadlock, out of memory) are raised again;
 *	 5. answer: a ConfirmBOD (or ShowMaterialInformation), recorded in
 *		mfgsync.inbound_message with the message's key and status.
 *
 * Rejections are recorded but do not take the key: a sender may fix a
 * rejected message and send it again under the same key.
 *
 * libxml2 allocates with malloc.  The trees a call owns hang off
 * an InMessage whose memory context frees them on reset, so an error
 * anywhere releases them (STYLE.md, 9).
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml_in.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "b2mml.h"
#include "b2mml_in.h"
#include "mfgsync.h"

PG_FUNCTION_INFO_V1(mfgsync_receive_b2mml);
PG_FUNCTION_INFO_V1(mfgsync_check_inbound_path);

/* advisory lock class of the deduplication keys ("mfgi") */
#define DEDUP_LOCK_CLASS 1835427689

/* the messages receive_b2mml takes */
typedef enum InKind
{
	IN_SYNC_PERFORMANCE,
	IN_CANCEL_PERFORMANCE,
	IN_SYNC_SCHEDULE,
	IN_GET_MATERIAL,
	IN_CONFIRM
} InKind;

typedef struct InMessageType
{
	const char *root;			/* verb + noun */
	InKind		kind;
	const char *verb;			/* first child of DataArea */
	const char *noun;			/* the repeated children after it */
	const char *level1;			/* mapped element inside the noun */
	const char *level2;			/* mapped element inside level1 */
} InMessageType;

static const InMessageType in_types[] = {
	{"SyncProductionPerformance", IN_SYNC_PERFORMANCE, "Sync",
	"ProductionPerformance", "ProductionResponse", "SegmentResponse"},
	{"CancelProductionPerformance", IN_CANCEL_PERFORMANCE, "Cancel",
	"ProductionPerformance", "ProductionResponse", "SegmentResponse"},
	{"SyncProductionSchedule", IN_SYNC_SCHEDULE, "Sync",
	"ProductionSchedule", "ProductionRequest", "SegmentRequirement"},
	{"GetMaterialInformation", IN_GET_MATERIAL, "Get",
	"MaterialInformation", "MaterialDefinition", NULL},
	{"ConfirmBOD", IN_CONFIRM, "Confirm", "BOD", NULL, NULL},
};

/* one call's state; the context that holds it frees the trees */
typedef struct InMessage
{
	const InMessageType *type;	/* NULL until the root is known */
	B2mmlDialect dialect;
	xmlDocPtr	doc;			/* the message */
	xmlDocPtr	answer;			/* the reply being built */
	xmlNodePtr	root;
	xmlNodePtr	aa;				/* ApplicationArea */
	bool		aa_ok;			/* aa is fit to be copied into a reply */
	const char *action;			/* Add / Change / Delete (Sync) */
	char	   *dedup_key;		/* "BODID:..." or "LogicalID:..." */
	char	   *sender;			/* Sender/LogicalID */
	StringInfoData note;		/* what was applied */
} InMessage;


/* ----------------------------------------------------------------
 * Checks (the element-level ones are in b2mml_check.c)
 * ----------------------------------------------------------------
 */

/* the Sync verb's action code: Add (default), Change or Delete */
static char *
check_action(InMessage *m, xmlNodePtr verb)
{
	m->action = "Add";
	if (strcmp(m->type->verb, "Sync") != 0)
		return NULL;
	for (xmlNodePtr ac = mfgsync_b2mml_child(verb, "ActionCriteria"); ac;
		 ac = mfgsync_b2mml_next(ac, "ActionCriteria"))
		for (xmlNodePtr ae = mfgsync_b2mml_child(ac, "ActionExpression"); ae;
			 ae = mfgsync_b2mml_next(ae, "ActionExpression"))
		{
			char	   *code = mfgsync_b2mml_attr(ae, "actionCode");
			bool		first = (ac == mfgsync_b2mml_child(verb, "ActionCriteria") &&
								 ae == mfgsync_b2mml_child(ac, "ActionExpression"));

			if (code == NULL)
				return psprintf("unknown action code: %s has no actionCode", mfgsync_b2mml_path(ae));
			if (strcmp(code, "Add") != 0 && strcmp(code, "Change") != 0 &&
				strcmp(code, "Delete") != 0)
				return psprintf("unknown action code: \"%s\" in %s; Sync takes Add, Change or Delete",
								code, mfgsync_b2mml_path(ae));
			if (first)
				m->action = code;
			else if (strcmp(code, m->action) != 0)
				return psprintf("unknown action code: %s says \"%s\" but an earlier ActionExpression says \"%s\"; one message takes one action",
								mfgsync_b2mml_path(ae), code, m->action);
		}
	return NULL;
}

/*
 * Check the message; returns the first problem or NULL.  Fills m->type,
 * m->aa, m->aa_ok, m->action, m->dedup_key and m->sender.
 */
static char *
check_message(InMessage *m)
{
	xmlNodePtr	root = m->root;
	bool		xml = (m->dialect == B2MML_XML);
	const char *rootname = (const char *) root->name;
	xmlNodePtr	da,
				verb,
				c;
	char	   *why;
	char	   *bodid,
			   *cdt;

	if (xml && (root->ns == NULL || strcmp((const char *) root->ns->href, MFGSYNC_B2MML_NS) != 0))
		return psprintf("wrong namespace: root element %s is in %s%s%s; B2MML V0600 is \"%s\"",
						rootname,
						root->ns ? "namespace \"" : "no namespace",
						root->ns ? (const char *) root->ns->href : "",
						root->ns ? "\"" : "", MFGSYNC_B2MML_NS);
	for (int i = 0; i < lengthof(in_types); i++)
		if (strcmp(rootname, in_types[i].root) == 0)
			m->type = &in_types[i];
	if (m->type == NULL)
		return psprintf("unknown noun: %s is not accepted; receive_b2mml takes SyncProductionPerformance, CancelProductionPerformance, SyncProductionSchedule, GetMaterialInformation and ConfirmBOD",
						rootname);

	/* root attributes: releaseID (required in XML), versionID; ConfirmBOD none */
	for (xmlAttrPtr a = root->properties; a; a = a->next)
	{
		const char *an = (const char *) a->name;

		if (m->type->kind == IN_CONFIRM)
			return psprintf("invalid attribute: ConfirmBOD takes no attributes, found %s", an);
		if (strcmp(an, "releaseID") != 0 && strcmp(an, "versionID") != 0)
			return psprintf("invalid attribute: %s takes releaseID and versionID, found %s",
							rootname, an);
	}
	if (xml && m->type->kind != IN_CONFIRM &&
		xmlHasProp(root, (const xmlChar *) "releaseID") == NULL)
		return psprintf("missing releaseID: the root element %s must have a releaseID attribute",
						rootname);

	why = mfgsync_b2mml_check_tree(root, xml);
	if (why)
		return why;

	/* ApplicationArea, DataArea, nothing else */
	for (c = root->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
			!mfgsync_b2mml_is_element(c, "ApplicationArea") && !mfgsync_b2mml_is_element(c, "DataArea"))
			return psprintf("unexpected element: %s in %s", c->name, rootname);
	m->aa = mfgsync_b2mml_child(root, "ApplicationArea");
	if (m->aa == NULL)
		return psprintf("missing ApplicationArea in %s", rootname);
	cdt = mfgsync_b2mml_child_text(m->aa, "CreationDateTime");
	if (cdt == NULL)
		return pstrdup("bad date-time: ApplicationArea has no CreationDateTime");
	m->aa_ok = true;

	bodid = mfgsync_b2mml_child_text(m->aa, "BODID");
	m->sender = mfgsync_b2mml_child_text(mfgsync_b2mml_child(m->aa, "Sender"), "LogicalID");
	if (mfgsync_b2mml_dedup_key != MFG_B2MML_DEDUP_LOGICALID && bodid)
		m->dedup_key = psprintf("BODID:%s", bodid);
	else if (mfgsync_b2mml_dedup_key != MFG_B2MML_DEDUP_BODID && m->sender)
		m->dedup_key = psprintf("LogicalID:%s", m->sender);
	else
		return psprintf("missing ID: ApplicationArea has no %s",
						mfgsync_b2mml_dedup_key == MFG_B2MML_DEDUP_BODID ? "BODID" :
						mfgsync_b2mml_dedup_key == MFG_B2MML_DEDUP_LOGICALID ? "Sender/LogicalID" :
						"BODID and no Sender/LogicalID");

	da = mfgsync_b2mml_child(root, "DataArea");
	if (da == NULL)
		return psprintf("missing DataArea in %s", rootname);
	verb = mfgsync_b2mml_child(da, NULL);
	if (verb == NULL || strcmp((const char *) verb->name, m->type->verb) != 0)
		return psprintf("missing verb: DataArea of %s must start with %s, found %s",
						rootname, m->type->verb, verb ? (const char *) verb->name : "nothing");
	if (mfgsync_b2mml_child(da, m->type->noun) == NULL)
		return psprintf("missing noun: DataArea of %s has no %s", rootname, m->type->noun);
	for (c = verb->next; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && !mfgsync_b2mml_is_element(c, m->type->noun))
			return psprintf("unexpected element: %s in the DataArea of %s, which takes %s",
							c->name, rootname, m->type->noun);
	why = check_action(m, verb);
	if (why)
		return why;

	if (xml)
		return mfgsync_b2mml_check_schema(m->doc);
	return NULL;
}

/* ----------------------------------------------------------------
 * Paths: where a column's value sits in a mapped element
 *
 *	 path  := ['../'...] step ['/' step ...] ['/@' attribute]
 *	 step  := Name ['[' Name '=' value ']']
 *
 * "../ID" is the parent element's ID, "MaterialActual[MaterialUse=Produced]
 * /Quantity/QuantityString" the first MaterialActual whose MaterialUse is
 * Produced, "SegmentState/@OtherValue" an attribute.
 * ----------------------------------------------------------------
 */
typedef enum InStepKind
{
	STEP_PARENT,
	STEP_CHILD,
	STEP_ATTRIBUTE
} InStepKind;

typedef struct InStep
{
	InStepKind	kind;
	char	   *name;
	char	   *pred_name;		/* NULL: no predicate */
	char	   *pred_value;
} InStep;

typedef struct InPath
{
	int			nsteps;
	InStep		steps[16];
} InPath;

static int
name_length(const char *s)
{
	int			n = 0;

	if (!(isalpha((unsigned char) s[0]) || s[0] == '_'))
		return 0;
	while (isalnum((unsigned char) s[n]) || s[n] == '_' || s[n] == '-' || s[n] == '.')
		n++;
	return n;
}

/* parse path; false with *why on a syntax error */
static bool
parse_path(const char *path, InPath *out, char **why)
{
	const char *p = path;

	out->nsteps = 0;
	while (strncmp(p, "../", 3) == 0)
	{
		if (out->nsteps >= lengthof(out->steps))
			goto too_long;
		out->steps[out->nsteps++].kind = STEP_PARENT;
		p += 3;
	}
	for (;;)
	{
		InStep	   *st;
		int			n;

		if (out->nsteps >= lengthof(out->steps))
			goto too_long;
		st = &out->steps[out->nsteps++];
		st->pred_name = st->pred_value = NULL;
		if (*p == '@')
		{
			n = name_length(p + 1);
			if (n == 0 || p[1 + n] != '\0' || out->nsteps == 1 ||
				out->steps[out->nsteps - 2].kind == STEP_PARENT)
			{
				*why = pstrdup("An attribute (@name) can only be the last step, after an element.");
				return false;
			}
			st->kind = STEP_ATTRIBUTE;
			st->name = pnstrdup(p + 1, n);
			return true;
		}
		n = name_length(p);
		if (n == 0)
		{
			*why = psprintf("Expected an element name at \"%s\".", p);
			return false;
		}
		st->kind = STEP_CHILD;
		st->name = pnstrdup(p, n);
		p += n;
		if (*p == '[')
		{
			const char *close;

			n = name_length(p + 1);
			if (n == 0 || p[1 + n] != '=' || (close = strchr(p + 2 + n, ']')) == NULL)
			{
				*why = psprintf("Expected [Name=value] at \"%s\".", p);
				return false;
			}
			st->pred_name = pnstrdup(p + 1, n);
			st->pred_value = pnstrdup(p + 2 + n, close - (p + 2 + n));
			p = close + 1;
		}
		if (*p == '\0')
			return true;
		if (*p != '/')
		{
			*why = psprintf("Expected \"/\" at \"%s\".", p);
			return false;
		}
		p++;
	}

too_long:
	*why = psprintf("A path has at most %d steps.", (int) lengthof(out->steps));
	return false;
}

/* the value a path selects in elem, or NULL */
static char *
eval_path(xmlNodePtr elem, const InPath *path)
{
	xmlNodePtr	node = elem;

	for (int i = 0; i < path->nsteps && node; i++)
	{
		const InStep *st = &path->steps[i];
		xmlNodePtr	c;

		switch (st->kind)
		{
			case STEP_PARENT:
				node = node->parent;
				if (node && node->type != XML_ELEMENT_NODE)
					node = NULL;
				break;
			case STEP_ATTRIBUTE:
				return mfgsync_b2mml_attr(node, st->name);
			case STEP_CHILD:
				for (c = mfgsync_b2mml_child(node, st->name); c; c = mfgsync_b2mml_next(c, st->name))
				{
					char	   *v;

					if (st->pred_name == NULL)
						break;
					v = mfgsync_b2mml_child_text(c, st->pred_name);
					if (v && strcmp(v, st->pred_value) == 0)
						break;
				}
				node = c;
				break;
		}
	}
	return node ? mfgsync_b2mml_text(node) : NULL;
}

/* paths a MaterialDefinition mapping may use: ShowMaterialInformation writes them */
static bool
material_path_ok(const InPath *path)
{
	const InStep *s = path->steps;

	if (path->nsteps == 1 && s[0].kind == STEP_CHILD && s[0].pred_name == NULL)
		return strcmp(s[0].name, "ID") == 0 ||
			strcmp(s[0].name, "Description") == 0 ||
			strcmp(s[0].name, "MaterialClassID") == 0;
	return path->nsteps == 3 && s[0].kind == STEP_CHILD &&
		strcmp(s[0].name, "MaterialDefinitionProperty") == 0 &&
		s[0].pred_name && strcmp(s[0].pred_name, "ID") == 0 &&
		s[0].pred_value[0] != '\0' &&
		s[1].kind == STEP_CHILD && strcmp(s[1].name, "Value") == 0 && !s[1].pred_name &&
		s[2].kind == STEP_CHILD && !s[2].pred_name &&
		(strcmp(s[2].name, "ValueString") == 0 || strcmp(s[2].name, "UnitOfMeasure") == 0);
}

/*
 * mfgsync.check_inbound_path(element text, path text): raise an error
 * unless path is a valid path for mappings of element.
 */
Datum
mfgsync_check_inbound_path(PG_FUNCTION_ARGS)
{
	char	   *element = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	InPath		parsed;
	char	   *why = NULL;

	if (!parse_path(path, &parsed, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid B2MML path \"%s\"", path),
				 errdetail("%s", why),
				 errhint("A path is element names separated by \"/\", e.g. \"ID\", \"../ID\", \"MaterialActual[MaterialUse=Produced]/Quantity/QuantityString\", \"SegmentState/@OtherValue\".")));
	if (strcmp(element, "MaterialDefinition") == 0 && !material_path_ok(&parsed))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid B2MML path \"%s\" for MaterialDefinition", path),
				 errdetail("ShowMaterialInformation is written from these paths only."),
				 errhint("Use ID, Description, MaterialClassID, MaterialDefinitionProperty[ID=name]/Value/ValueString or MaterialDefinitionProperty[ID=name]/Value/UnitOfMeasure.")));
	PG_RETURN_VOID();
}

/* ----------------------------------------------------------------
 * Mappings and applying them
 * ----------------------------------------------------------------
 */
typedef struct InColumn
{
	char	   *name;
	char	   *path_text;
	InPath		path;
	bool		is_key;
	Oid			typid;
	int32		typmod;
	Oid			typinput;
	Oid			typioparam;
} InColumn;

typedef struct InMapping
{
	const char *element;
	Oid			relid;
	char	   *relname;		/* quoted, schema-qualified */
	char	   *cancelled;		/* boolean column marking removals, or NULL */
	int			ncols;
	InColumn   *cols;
	SPIPlanPtr	upsert;
	SPIPlanPtr	remove;
	SPIPlanPtr	select_one;
	SPIPlanPtr	select_all;
	int64		changed;		/* rows written */
	int64		unchanged;		/* elements that changed nothing */
} InMapping;

/* the mapping declared for element, or NULL */
static InMapping *
load_mapping(const char *element)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	InMapping  *map;
	int			rc;

	args[0] = CStringGetTextDatum(element);
	rc = SPI_execute_with_args(
							   "SELECT m.target::pg_catalog.oid, m.cancelled_column, c.key, c.value,"
							   " c.key OPERATOR(pg_catalog.=) ANY (m.key_columns), m.owner::pg_catalog.oid"
							   " FROM mfgsync.inbound_mapping m,"
							   " pg_catalog.jsonb_each_text(m.columns) c"
							   " WHERE m.element OPERATOR(pg_catalog.=) $1 ORDER BY c.key",
							   1, argtypes, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "SPI_execute_with_args");
	if (SPI_processed == 0)
		return NULL;

	map = palloc0(sizeof(InMapping));
	map->element = element;
	map->ncols = SPI_processed;
	map->cols = palloc0(sizeof(InColumn) * map->ncols);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		InColumn   *col = &map->cols[i];
		bool		isnull;
		AttrNumber	attnum;
		Oid			collid;
		char	   *why;

		map->relid = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
		map->cancelled = SPI_getvalue(tup, td, 2);
		col->name = SPI_getvalue(tup, td, 3);
		col->path_text = SPI_getvalue(tup, td, 4);
		col->is_key = DatumGetBool(SPI_getbinval(tup, td, 5, &isnull));
		if (!parse_path(col->path_text, &col->path, &why))
			elog(ERROR, "invalid stored path \"%s\": %s", col->path_text, why);
		attnum = get_attnum(map->relid, col->name);
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of the %s mapping no longer exists", col->name, element),
					 errhint("Declare the mapping again with mfgsync.map_inbound.")));
		get_atttypetypmodcoll(map->relid, attnum, &col->typid, &col->typmod, &collid);
		getTypeInputInfo(col->typid, &col->typinput, &col->typioparam);
	}
	{
		char	   *relname = get_rel_name(map->relid);
		bool		isnull;
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 6, &isnull));
		AclMode		needed = strcmp(element, "MaterialDefinition") == 0 ? ACL_SELECT :
			(ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_DELETE);

		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the target table of the %s mapping no longer exists", element),
					 errhint("Declare the mapping again with mfgsync.map_inbound.")));
		/* the mapping's owner still has the rights it had when declaring it */
		if (pg_class_aclcheck(map->relid, owner, needed) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied: the owner of the %s mapping may no longer write %s",
							element, relname)));
		map->relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(map->relid)),
												  relname);
	}
	return map;
}

/*
 * The element (and column) being applied, named in the Description when
 * applying fails
 */
static xmlNodePtr apply_elem = NULL;
static InColumn *apply_col = NULL;

/* numeric columns take edinn's decimal comma: "0,100" is 0.100 */
static char *
decimal_point(char *v, Oid typid)
{
	char	   *comma;

	if (typid != NUMERICOID && typid != FLOAT4OID && typid != FLOAT8OID)
		return v;
	comma = strchr(v, ',');
	if (comma && strchr(comma + 1, ',') == NULL && strchr(v, '.') == NULL)
		*comma = '.';
	return v;
}

/*
 * The values of elem for the mapping's columns (keys_only: the key columns
 * only, in order).  A missing key rejects the message.
 */
static int
row_values(InMapping *map, xmlNodePtr elem, bool keys_only,
		   Datum *values, char *nulls, Oid *types)
{
	int			n = 0;

	apply_elem = elem;

	for (int i = 0; i < map->ncols; i++)
	{
		InColumn   *col = &map->cols[i];
		char	   *v;

		if (keys_only && !col->is_key)
			continue;
		apply_col = col;
		v = eval_path(elem, &col->path);
		if (v == NULL && col->is_key)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("missing ID: %s has no %s, the key of the %s mapping",
							elem->name, col->path_text, map->element)));
		types[n] = col->typid;
		nulls[n] = v ? ' ' : 'n';
		values[n] = v ? OidInputFunctionCall(col->typinput,
											 decimal_point(v, col->typid),
											 col->typioparam, col->typmod)
			: (Datum) 0;
		n++;
	}
	apply_col = NULL;
	return n;
}

static void
append_key_condition(StringInfo sql, InMapping *map, int *param)
{
	bool		first = true;

	for (int i = 0; i < map->ncols; i++)
		if (map->cols[i].is_key)
		{
			appendStringInfo(sql, "%s%s OPERATOR(pg_catalog.=) $%d",
							 first ? "" : " AND ",
							 quote_identifier(map->cols[i].name), ++(*param));
			first = false;
		}
}

/* insert or update one element's row; unchanged rows are not written */
static void
upsert_element(InMapping *map, xmlNodePtr elem)
{
	Datum	   *values = palloc(sizeof(Datum) * map->ncols);
	char	   *nulls = palloc(map->ncols + 1);
	Oid		   *types = palloc(sizeof(Oid) * map->ncols);
	int			n = row_values(map, elem, false, values, nulls, types);
	int			rc;

	if (map->upsert == NULL)
	{
		StringInfoData sql;
		StringInfoData keys;
		StringInfoData set;
		StringInfoData oldrow;
		StringInfoData newrow;

		initStringInfo(&sql);
		initStringInfo(&keys);
		initStringInfo(&set);
		initStringInfo(&oldrow);
		initStringInfo(&newrow);
		appendStringInfo(&sql, "INSERT INTO %s AS t (", map->relname);
		for (int i = 0; i < map->ncols; i++)
		{
			const char *qc = quote_identifier(map->cols[i].name);

			appendStringInfo(&sql, "%s%s", i ? ", " : "", qc);
			if (map->cols[i].is_key)
				appendStringInfo(&keys, "%s%s", keys.len ? ", " : "", qc);
			else
			{
				appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", qc, qc);
				appendStringInfo(&oldrow, "%st.%s", oldrow.len ? ", " : "", qc);
				appendStringInfo(&newrow, "%sEXCLUDED.%s", newrow.len ? ", " : "", qc);
			}
		}
		if (map->cancelled)
		{
			const char *qc = quote_identifier(map->cancelled);

			appendStringInfo(&sql, ", %s", qc);
			appendStringInfo(&set, "%s%s = false", set.len ? ", " : "", qc);
			appendStringInfo(&oldrow, "%st.%s", oldrow.len ? ", " : "", qc);
			appendStringInfo(&newrow, "%sfalse", newrow.len ? ", " : "");
		}
		appendStringInfoString(&sql, ") VALUES (");
		for (int i = 0; i < n; i++)
			appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
		if (map->cancelled)
			appendStringInfoString(&sql, ", false");
		appendStringInfo(&sql, ") ON CONFLICT (%s) ", keys.data);
		if (set.len == 0)
			appendStringInfoString(&sql, "DO NOTHING");
		else
			appendStringInfo(&sql, "DO UPDATE SET %s WHERE ROW(%s) IS DISTINCT FROM ROW(%s)",
							 set.data, oldrow.data, newrow.data);
		map->upsert = SPI_prepare(sql.data, n, types);
		if (map->upsert == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
				 SPI_result_code_string(SPI_result));
	}
	rc = SPI_execute_plan(map->upsert, values, nulls, false, 0);
	mfgsync_check_spi(rc, SPI_OK_INSERT, "SPI_execute_plan");
	if (SPI_processed > 0)
		map->changed += SPI_processed;
	else
		map->unchanged++;
}

/* delete one element's row, or mark it in the cancelled column */
static void
remove_element(InMapping *map, xmlNodePtr elem)
{
	Datum	   *values = palloc(sizeof(Datum) * map->ncols);
	char	   *nulls = palloc(map->ncols + 1);
	Oid		   *types = palloc(sizeof(Oid) * map->ncols);
	int			n = row_values(map, elem, true, values, nulls, types);
	int			rc;

	if (map->remove == NULL)
	{
		StringInfoData sql;
		int			param = 0;

		initStringInfo(&sql);
		if (map->cancelled)
			appendStringInfo(&sql, "UPDATE %s SET %s = true WHERE ",
							 map->relname, quote_identifier(map->cancelled));
		else
			appendStringInfo(&sql, "DELETE FROM %s WHERE ", map->relname);
		append_key_condition(&sql, map, &param);
		if (map->cancelled)
			appendStringInfo(&sql, " AND %s IS DISTINCT FROM true",
							 quote_identifier(map->cancelled));
		map->remove = SPI_prepare(sql.data, n, types);
		if (map->remove == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
				 SPI_result_code_string(SPI_result));
	}
	rc = SPI_execute_plan(map->remove, values, nulls, false, 0);
	if (rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
		map->changed += SPI_processed;
	else
		map->unchanged++;
}

static void
note_counts(InMessage *m, InMapping *map, const char *verb)
{
	if (map == NULL)
		return;
	appendStringInfo(&m->note, "%s%s: " INT64_FORMAT " %s, " INT64_FORMAT " unchanged",
					 m->note.len ? "; " : "", map->element, map->changed, verb,
					 map->unchanged);
}

/* Sync/Cancel of ProductionPerformance or ProductionSchedule */
static void
apply_elements(InMessage *m)
{
	const InMessageType *t = m->type;
	xmlNodePtr	da = mfgsync_b2mml_child(m->root, "DataArea");
	bool		removing = (t->kind == IN_CANCEL_PERFORMANCE ||
							strcmp(m->action, "Delete") == 0);
	InMapping  *map1 = load_mapping(t->level1);
	InMapping  *map2 = load_mapping(t->level2);
	List	   *elems1 = NIL;
	List	   *elems2 = NIL;
	ListCell   *lc;

	for (xmlNodePtr noun = mfgsync_b2mml_child(da, t->noun); noun; noun = mfgsync_b2mml_next(noun, t->noun))
		for (xmlNodePtr e1 = mfgsync_b2mml_child(noun, t->level1); e1; e1 = mfgsync_b2mml_next(e1, t->level1))
		{
			elems1 = lappend(elems1, e1);
			for (xmlNodePtr e2 = mfgsync_b2mml_child(e1, t->level2); e2; e2 = mfgsync_b2mml_next(e2, t->level2))
				elems2 = lappend(elems2, e2);
		}

	if ((elems1 && map1 == NULL) || (elems2 && map2 == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no inbound mapping: the message has %s elements but none is declared for them (mfgsync.map_inbound)",
						elems2 && map2 == NULL ? t->level2 : t->level1)));

	if (!removing)
	{
		foreach(lc, elems1)
			upsert_element(map1, lfirst(lc));
		foreach(lc, elems2)
			upsert_element(map2, lfirst(lc));
	}
	else
	{
		foreach(lc, elems2)
			remove_element(map2, lfirst(lc));
		foreach(lc, elems1)
			remove_element(map1, lfirst(lc));
	}
	note_counts(m, map1, removing ? (map1 && map1->cancelled ? "cancelled" : "deleted") : "written");
	note_counts(m, map2, removing ? (map2 && map2->cancelled ? "cancelled" : "deleted") : "written");
	if (m->note.len == 0)
		appendStringInfo(&m->note, "nothing to apply: the message has no %s", t->level1);
}

/* ----------------------------------------------------------------
 * Answers
 * ----------------------------------------------------------------
 */

/* a random (version 4) UUID */
static char *
new_uuid(void)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
					b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* now, in UTC: 2024-05-06T14:20:01.123Z */
static char *
now_datetime(void)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(GetCurrentTimestamp(), NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
					tm.tm_sec, (int) (fsec / 1000));
}

/* the answer's own ApplicationArea */
static void
add_application_area(xmlNodePtr parent, InMessage *m)
{
	xmlNodePtr	aa = mfgsync_b2mml_add(parent, "ApplicationArea", NULL);

	/* the same sender identity as mfgsync's outbound messages */
	if (mfgsync_b2mml_component_id && mfgsync_b2mml_component_id[0])
		mfgsync_b2mml_add(mfgsync_b2mml_add(aa, "Sender", NULL), "ComponentID",
				  mfgsync_b2mml_component_id);
	if (m->sender)
	{
		xmlNodePtr	receiver = mfgsync_b2mml_add(aa, "Receiver", NULL);

		mfgsync_b2mml_add(receiver, "LogicalID", m->sender);
	}
	mfgsync_b2mml_add(aa, "CreationDateTime", now_datetime());
	mfgsync_b2mml_add(aa, "BODID", new_uuid());
}

/*
 * The message's ApplicationArea as OriginalApplicationArea: only the
 * checked fields, so that the answer stays valid whatever came in.
 */
static void
add_original_application_area(xmlNodePtr parent, InMessage *m)
{
	xmlNodePtr	oaa;
	xmlNodePtr	sender;
	char	   *v;

	if (!m->aa_ok)
		return;
	oaa = mfgsync_b2mml_add(parent, "OriginalApplicationArea", NULL);
	sender = mfgsync_b2mml_child(m->aa, "Sender");
	if (sender)
	{
		xmlNodePtr	s = mfgsync_b2mml_add(oaa, "Sender", NULL);

		if ((v = mfgsync_b2mml_child_text(sender, "LogicalID")) != NULL)
			mfgsync_b2mml_add(s, "LogicalID", v);
		if ((v = mfgsync_b2mml_child_text(sender, "ComponentID")) != NULL)
			mfgsync_b2mml_add(s, "ComponentID", v);
		if ((v = mfgsync_b2mml_child_text(sender, "ConfirmationCode")) != NULL)
			mfgsync_b2mml_add(s, "ConfirmationCode", v);
	}
	mfgsync_b2mml_add(oaa, "CreationDateTime", mfgsync_b2mml_child_text(m->aa, "CreationDateTime"));
	if ((v = mfgsync_b2mml_child_text(m->aa, "BODID")) != NULL)
		mfgsync_b2mml_add(oaa, "BODID", v);
}

static xmlNodePtr
new_answer(InMessage *m, const char *rootname, bool release)
{
	xmlNodePtr	root;
	xmlNsPtr	ns;

	if (m->answer)
		xmlFreeDoc(m->answer);
	m->answer = xmlNewDoc((const xmlChar *) "1.0");
	root = xmlNewDocNode(m->answer, NULL, (const xmlChar *) rootname, NULL);
	xmlDocSetRootElement(m->answer, root);
	ns = xmlNewNs(root, (const xmlChar *) MFGSYNC_B2MML_NS, NULL);
	xmlSetNs(root, ns);
	if (release)
	{
		char	   *rel = m->root ? mfgsync_b2mml_attr(m->root, "releaseID") : NULL;

		xmlSetProp(root, (const xmlChar *) "releaseID",
				   (const xmlChar *) (rel ? rel : "B2MML-V0600"));
	}
	return root;
}

/* ConfirmBOD: Accepted, or Rejected with a Description */
static void
build_confirm(InMessage *m, bool accepted, const char *description,
			  const char *note)
{
	xmlNodePtr	root = new_answer(m, "ConfirmBOD", false);
	xmlNodePtr	da,
				confirm,
				rc,
				re,
				bod;

	add_application_area(root, m);
	da = mfgsync_b2mml_add(root, "DataArea", NULL);
	confirm = mfgsync_b2mml_add(da, "Confirm", NULL);
	add_original_application_area(confirm, m);
	rc = mfgsync_b2mml_add(confirm, "ResponseCriteria", NULL);
	re = mfgsync_b2mml_add(rc, "ResponseExpression", NULL);
	xmlSetProp(re, (const xmlChar *) "actionCode",
			   (const xmlChar *) (accepted ? "Accepted" : "Rejected"));
	bod = mfgsync_b2mml_add(da, "BOD", NULL);
	add_original_application_area(bod, m);
	if (description)
		mfgsync_b2mml_add(bod, "Description", description);
	if (note && note[0])
		mfgsync_b2mml_add(bod, "Note", note);
}

/* the mapping column whose path is name (one step), or -1 */
static int
material_column(InMapping *map, const char *name)
{
	for (int i = 0; i < map->ncols; i++)
		if (map->cols[i].path.nsteps == 1 &&
			strcmp(map->cols[i].path.steps[0].name, name) == 0)
			return i;
	return -1;
}

/* the UnitOfMeasure column of the property of column vcol, or -1 */
static int
material_unit_column(InMapping *map, int vcol)
{
	const char *prop = map->cols[vcol].path.steps[0].pred_value;

	for (int i = 0; i < map->ncols; i++)
		if (map->cols[i].path.nsteps == 3 &&
			strcmp(map->cols[i].path.steps[2].name, "UnitOfMeasure") == 0 &&
			strcmp(map->cols[i].path.steps[0].pred_value, prop) == 0)
			return i;
	return -1;
}

/* one MaterialDefinition from a row of the material table */
static void
add_material(xmlNodePtr parent, InMapping *map, HeapTuple tup, TupleDesc td)
{
	xmlNodePtr	md = mfgsync_b2mml_add(parent, "MaterialDefinition", NULL);
	int			i;
	char	   *v;

	/* schema order: ID, Description, MaterialDefinitionProperty*, MaterialClassID */
	if ((i = material_column(map, "ID")) >= 0)
		mfgsync_b2mml_add(md, "ID", SPI_getvalue(tup, td, i + 1));
	if ((i = material_column(map, "Description")) >= 0 &&
		(v = SPI_getvalue(tup, td, i + 1)) != NULL)
		mfgsync_b2mml_add(md, "Description", v);
	for (i = 0; i < map->ncols; i++)
	{
		const InPath *p = &map->cols[i].path;
		xmlNodePtr	prop,
					value;
		int			u;

		if (p->nsteps != 3 || strcmp(p->steps[2].name, "ValueString") != 0 ||
			(v = SPI_getvalue(tup, td, i + 1)) == NULL)
			continue;
		prop = mfgsync_b2mml_add(md, "MaterialDefinitionProperty", NULL);
		mfgsync_b2mml_add(prop, "ID", p->steps[0].pred_value);
		value = mfgsync_b2mml_add(prop, "Value", NULL);
		mfgsync_b2mml_add(value, "ValueString", v);
		if ((u = material_unit_column(map, i)) >= 0 &&
			(v = SPI_getvalue(tup, td, u + 1)) != NULL)
			mfgsync_b2mml_add(value, "UnitOfMeasure", v);
	}
	if ((i = material_column(map, "MaterialClassID")) >= 0 &&
		(v = SPI_getvalue(tup, td, i + 1)) != NULL)
		mfgsync_b2mml_add(md, "MaterialClassID", v);
}

/* GetMaterialInformation: ShowMaterialInformation from the material table */
static void
answer_get_material(InMessage *m)
{
	InMapping  *map = load_mapping("MaterialDefinition");
	xmlNodePtr	da = mfgsync_b2mml_child(m->root, "DataArea");
	xmlNodePtr	root,
				ada,
				show,
				rc,
				re;
	int			keycol = -1;

	if (map == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no inbound mapping: GetMaterialInformation needs a MaterialDefinition mapping (mfgsync.map_inbound)")));
	for (int i = 0; i < map->ncols; i++)
		if (map->cols[i].is_key)
			keycol = i;
	if (keycol < 0)
		elog(ERROR, "the MaterialDefinition mapping has no key column");

	root = new_answer(m, "ShowMaterialInformation", true);
	add_application_area(root, m);
	ada = mfgsync_b2mml_add(root, "DataArea", NULL);
	show = mfgsync_b2mml_add(ada, "Show", NULL);
	add_original_application_area(show, m);
	rc = mfgsync_b2mml_add(show, "ResponseCriteria", NULL);
	re = mfgsync_b2mml_add(rc, "ResponseExpression", NULL);
	xmlSetProp(re, (const xmlChar *) "actionCode", (const xmlChar *) "Accepted");

	for (xmlNodePtr mi = mfgsync_b2mml_child(da, "MaterialInformation"); mi;
		 mi = mfgsync_b2mml_next(mi, "MaterialInformation"))
	{
		xmlNodePtr	out = mfgsync_b2mml_add(ada, "MaterialInformation", NULL);

		for (xmlNodePtr c = mfgsync_b2mml_child(mi, NULL); c; c = mfgsync_b2mml_next(c, NULL))
		{
			char	   *id;
			int			rc2;

			if (!mfgsync_b2mml_is_element(c, "MaterialDefinition"))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("unsupported request: GetMaterialInformation answers MaterialDefinition only, not %s",
								c->name)));
			id = mfgsync_b2mml_child_text(c, "ID");
			if (id == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_NOT_NULL_VIOLATION),
						 errmsg("missing ID: %s has no ID", mfgsync_b2mml_path(c))));
			if (strcmp(id, "*") == 0)
			{
				if (map->select_all == NULL)
				{
					StringInfoData sql;

					initStringInfo(&sql);
					appendStringInfoString(&sql, "SELECT ");
					for (int i = 0; i < map->ncols; i++)
						appendStringInfo(&sql, "%s%s", i ? ", " : "",
										 quote_identifier(map->cols[i].name));
					appendStringInfo(&sql, " FROM %s ORDER BY %s", map->relname,
									 quote_identifier(map->cols[keycol].name));
					map->select_all = SPI_prepare(sql.data, 0, NULL);
					if (map->select_all == NULL)
						elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
				}
				rc2 = SPI_execute_plan(map->select_all, NULL, NULL, true, 0);
			}
			else
			{
				Datum		values[1];
				char		nulls[1];
				Oid			types[1];

				row_values(map, c, true, values, nulls, types);
				if (map->select_one == NULL)
				{
					StringInfoData sql;
					int			param = 0;

					initStringInfo(&sql);
					appendStringInfoString(&sql, "SELECT ");
					for (int i = 0; i < map->ncols; i++)
						appendStringInfo(&sql, "%s%s", i ? ", " : "",
										 quote_identifier(map->cols[i].name));
					appendStringInfo(&sql, " FROM %s WHERE ", map->relname);
					append_key_condition(&sql, map, &param);
					map->select_one = SPI_prepare(sql.data, 1, types);
					if (map->select_one == NULL)
						elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
				}
				rc2 = SPI_execute_plan(map->select_one, values, nulls, true, 0);
			}
			mfgsync_check_spi(rc2, SPI_OK_SELECT, "SPI_execute_plan");
			map->changed += SPI_processed;
			for (uint64 r = 0; r < SPI_processed; r++)
				add_material(out, map, SPI_tuptable->vals[r], SPI_tuptable->tupdesc);
		}
	}
}

/* ----------------------------------------------------------------
 * receive_b2mml
 * ----------------------------------------------------------------
 */

static void
free_message(void *arg)
{
	InMessage  *m = arg;

	if (m->doc)
		xmlFreeDoc(m->doc);
	if (m->answer)
		xmlFreeDoc(m->answer);
	m->doc = m->answer = NULL;
}

/* a kept XML answer in the syntax of the message it answers */
static char *
answer_in_dialect(InMessage *m, char *xml)
{
	if (m->dialect == B2MML_XML)
		return xml;
	if (m->answer == NULL)
	{
		B2mmlDialect kept;
		char	   *why = NULL;

		m->answer = mfgsync_b2mml_read(xml, strlen(xml), "UTF-8", &kept, &why);
		if (m->answer == NULL)
			elog(ERROR, "could not parse a kept B2MML answer: %s", why);
	}
	return mfgsync_b2mml_doc_to_json(m->answer, m->dialect);
}

/* errors that say something about the message (and so reject it) */
static bool
rejects_message(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_TRANSACTION_ROLLBACK:	/* deadlock, serialization */
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OPERATOR_INTERVENTION: /* cancel, shutdown */
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_INTERNAL_ERROR:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return false;
		default:
			return true;
	}
}

/*
 * Apply the message in a subtransaction.  Returns NULL when it applied, or
 * why it did not: the subtransaction is then rolled back.
 */
static char *
apply_message(InMessage *m)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *why = NULL;

	apply_elem = NULL;
	apply_col = NULL;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		switch (m->type->kind)
		{
			case IN_GET_MATERIAL:
				answer_get_material(m);
				break;
			case IN_CONFIRM:
				{
					char	   *settle_why = NULL;

					if (!mfgsync_b2mml_settle_confirm(m->doc, &settle_why))
						why = psprintf("unknown original message: %s",
									   settle_why ? settle_why :
									   "no outbound message matches the OriginalApplicationArea");
					else
						appendStringInfoString(&m->note, "settled the original message");
				}
				break;
			default:
				apply_elements(m);
				break;
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (!rejects_message(edata->sqlerrcode))
			ReThrowError(edata);
		/* the error's own context is SQL text of ours: name the element */
		if (apply_elem && apply_col)
			why = psprintf("%s (at %s, column %s from %s)", edata->message,
						   mfgsync_b2mml_path(apply_elem), apply_col->name,
						   apply_col->path_text);
		else if (apply_elem)
			why = psprintf("%s (at %s)", edata->message, mfgsync_b2mml_path(apply_elem));
		else
			why = pstrdup(edata->message);
		/* one line */
		for (char *p = why; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	PG_END_TRY();
	return why;
}

/* the accepted answer a key got before, or NULL; locks the key */
static char *
previous_answer(const char *key)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			rc;
	bool		isnull;

	args[0] = CStringGetTextDatum(key);
	/* concurrent copies of one message wait here for the first one's outcome */
	rc = SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock("
							   CppAsString2(DEDUP_LOCK_CLASS) ", pg_catalog.hashtext($1))",
							   1, argtypes, args, NULL, false, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "SPI_execute_with_args");
	rc = SPI_execute_with_args("SELECT answer FROM mfgsync.inbound_message"
							   " WHERE dedup_key OPERATOR(pg_catalog.=) $1"
							   " AND status OPERATOR(pg_catalog.=) 'Accepted'",
							   1, argtypes, args, NULL, false, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "SPI_execute_with_args");
	if (SPI_processed == 0)
		return NULL;
	return TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
}

static void
record_message(InMessage *m, const char *type, bool accepted,
			   const char *description, const char *answer)
{
	Oid			argtypes[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			rc;

	/* a Get changes nothing: it keeps no key, its next copy is answered anew */
	if (m->dedup_key && !(m->type && m->type->kind == IN_GET_MATERIAL))
		args[0] = CStringGetTextDatum(m->dedup_key);
	else
		nulls[0] = 'n';
	if (type)
		args[1] = CStringGetTextDatum(type);
	else
		nulls[1] = 'n';
	if (m->sender)
		args[2] = CStringGetTextDatum(m->sender);
	else
		nulls[2] = 'n';
	args[3] = CStringGetTextDatum(accepted ? "Accepted" : "Rejected");
	if (description)
		args[4] = CStringGetTextDatum(description);
	else
		nulls[4] = 'n';
	args[5] = CStringGetTextDatum(answer);
	rc = SPI_execute_with_args("INSERT INTO mfgsync.inbound_message"
							   " (dedup_key, message_type, sender, status, description, answer)"
							   " VALUES ($1, $2, $3, $4, $5, $6)",
							   6, argtypes, args, nulls, false, 0);
	mfgsync_check_spi(rc, SPI_OK_INSERT, "SPI_execute_with_args");
}

/*
 * mfgsync.receive_b2mml(message text) RETURNS text
 */
Datum
mfgsync_receive_b2mml(PG_FUNCTION_ARGS)
{
	text	   *msg = PG_GETARG_TEXT_PP(0);
	MemoryContext cxt;
	MemoryContext oldcxt;
	MemoryContextCallback *cb;
	InMessage  *m;
	char	   *utf8;
	char	   *why = NULL;
	char	   *answer = NULL;
	char	   *result;
	text	   *result_text;
	bool		accepted = false;
	int			len = VARSIZE_ANY_EXHDR(msg);

	cxt = AllocSetContextCreate(CurrentMemoryContext, "receive_b2mml",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	m = palloc0(sizeof(InMessage));
	initStringInfo(&m->note);
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = free_message;
	cb->arg = m;
	MemoryContextRegisterResetCallback(cxt, cb);

	utf8 = (char *) pg_do_encoding_conversion((unsigned char *) VARDATA_ANY(msg),
											  len, GetDatabaseEncoding(), PG_UTF8);
	if (utf8 != VARDATA_ANY(msg))
		len = strlen(utf8);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	m->doc = mfgsync_b2mml_read(utf8, len, "UTF-8", &m->dialect, &why);
	if (m->doc)
	{
		m->root = xmlDocGetRootElement(m->doc);
		why = check_message(m);
	}
	if (why == NULL && m->type->kind != IN_GET_MATERIAL)
		answer = previous_answer(m->dedup_key);
	if (answer == NULL)
	{
		if (why == NULL)
			why = apply_message(m);
		accepted = (why == NULL);
		if (!(accepted && m->type->kind == IN_GET_MATERIAL))
			build_confirm(m, accepted, accepted ? NULL : why,
						  accepted ? m->note.data : NULL);
		answer = mfgsync_b2mml_doc_to_json(m->answer, B2MML_XML);
		record_message(m, m->root ? (const char *) m->root->name : NULL,
					   accepted, why, answer);
	}
	answer = answer_in_dialect(m, answer);

	/* SPI calls leave SPI's own context current: keep the answer in ours */
	answer = MemoryContextStrdup(cxt, answer);
	SPI_finish();
	MemoryContextSwitchTo(oldcxt);
	result = (char *) pg_do_encoding_conversion((unsigned char *) answer,
												strlen(answer), PG_UTF8,
												GetDatabaseEncoding());
	result_text = cstring_to_text(result);
	MemoryContextDelete(cxt);	/* frees the trees */
	PG_RETURN_TEXT_P(result_text);
}
