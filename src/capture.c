/*-------------------------------------------------------------------------
 *
 * capture.c
 *		  Change capture: the trigger that turns row changes into events
 *
 * mfgsync.track() installs four triggers on a staging table, all calling
 * mfgsync_capture:
 *
 *	- AFTER INSERT, AFTER UPDATE and AFTER DELETE, FOR EACH STATEMENT, with
 *	  transition tables.  One call per statement sees every changed row, so
 *	  INSERT ... SELECT and COPY of a million rows cost one call and
 *	  batched outbox writes, not a million trigger invocations;
 *	- BEFORE TRUNCATE, which refuses the TRUNCATE unless the table opted
 *	  into a Truncate event.
 *
 * The mapping (message type, key columns, column -> domain name) is passed
 * as trigger arguments, so it needs no catalog query of our own: it is
 * resolved against the table's tuple descriptor once and cached per
 * relation until the next relcache invalidation, which re-tracking (it
 * recreates the triggers) and every ALTER TABLE send.  Argument layout:
 *
 *	  message_type, 'error' | 'event', nkeys, key column..., then either
 *	  '*' (every column under its own name) or (column, domain name) pairs.
 *
 * Per row: INSERT -> Add; DELETE -> Delete with old_data; UPDATE -> Change
 * with data and old_data, nothing if no mapped column's JSON changed, and
 * Delete of the old key followed by Add of the new one if the key changed.
 * Values are rendered by json.c; "changed" means "renders differently".
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "json.h"
#include "mfgsync.h"
#include "outbox.h"

PG_FUNCTION_INFO_V1(mfgsync_capture);
PG_FUNCTION_INFO_V1(mfgsync_record_trigger_dependencies);

/* one mapped column */
typedef struct MfgCaptureColumn
{
	AttrNumber	attnum;			/* column in the tracked table */
	char	   *jsonkey;		/* "domain name": escaped, ready to append */
	MfgJsonType type;			/* how its values render */
} MfgCaptureColumn;

/* the resolved mapping of one tracked table */
typedef struct MfgCapture
{
	Oid			relid;			/* hash key: the tracked table */
	bool		valid;			/* false once invalidated */
	MemoryContext mcxt;			/* owns everything below */
	text	   *message_type;	/* the events' message type */
	bool		truncate_event; /* TRUNCATE emits an event instead of failing */
	int			nkeys;			/* number of key columns */
	MfgCaptureColumn *keys;		/* key columns, under their domain names */
	int			ncolumns;		/* number of mapped columns */
	MfgCaptureColumn *columns;	/* mapped columns, in mapping order */
} MfgCapture;

/* relid -> MfgCapture, in CacheMemoryContext */
static HTAB *capture_cache = NULL;

/*
 * invalidate_capture
 *		Relcache callback: forget the mapping of relid (all if InvalidOid).
 */
static void
invalidate_capture(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	MfgCapture *cap;

	if (capture_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		cap = hash_search(capture_cache, &relid, HASH_FIND, NULL);
		if (cap)
			cap->valid = false;
		return;
	}
	hash_seq_init(&status, capture_cache);
	while ((cap = hash_seq_search(&status)) != NULL)
		cap->valid = false;
}

/*
 * lookup_column
 *		Attribute number of column name in rel, or an error naming it.
 */
static AttrNumber
lookup_column(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" tracked by mfgsync does not exist in relation \"%s\"",
						name, RelationGetRelationName(rel)),
				 errhint("Call mfgsync.track() again with the current column names.")));
	return attnum;
}

/*
 * init_column
 *		Fill col for column colname of rel, rendered under domain name.
 */
static void
init_column(MfgCaptureColumn *col, Relation rel, const char *colname,
			const char *domain, MemoryContext mcxt)
{
	StringInfoData buf;

	col->attnum = lookup_column(rel, colname);
	initStringInfo(&buf);
	mfgsync_json_append_key(&buf, domain);
	col->jsonkey = buf.data;
	mfgsync_json_type_init(&col->type,
						   TupleDescAttr(RelationGetDescr(rel),
										 col->attnum - 1)->atttypid,
						   mcxt);
}

/*
 * build_capture
 *		Resolve the trigger arguments of trigger against rel into cap.
 *
 * Everything is allocated in a new context that becomes a child of
 * CacheMemoryContext only once the mapping is complete, so an error leaves
 * nothing behind (the relcache's pattern).  Raises
 * ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED for arguments that
 * mfgsync.track() would not have written, and ERRCODE_UNDEFINED_COLUMN for
 * a mapped column that no longer exists.
 */
static void
build_capture(MfgCapture *cap, Relation rel, Trigger *trigger)
{
	char	  **args = trigger->tgargs;
	int			nargs = trigger->tgnargs;
	int			pos;
	int			i;
	MemoryContext oldcxt;

	if (nargs < 4 || (strcmp(args[1], "error") != 0 && strcmp(args[1], "event") != 0) ||
		(cap->nkeys = pg_strtoint32(args[2])) < 1 || cap->nkeys > nargs - 4)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" on relation \"%s\" has invalid mfgsync arguments",
						trigger->tgname, RelationGetRelationName(rel)),
				 errhint("Create capture triggers with mfgsync.track().")));

	cap->mcxt = AllocSetContextCreate(CurrentMemoryContext, "mfgsync capture mapping",
									  ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cap->mcxt);

	cap->message_type = cstring_to_text(args[0]);
	cap->truncate_event = strcmp(args[1], "event") == 0;

	/* mapped columns: '*' or (column, domain) pairs after the keys */
	pos = 3 + cap->nkeys;
	if (nargs == pos + 1 && strcmp(args[pos], "*") == 0)
	{
		TupleDesc	tupdesc = RelationGetDescr(rel);

		cap->columns = palloc(sizeof(MfgCaptureColumn) * tupdesc->natts);
		cap->ncolumns = 0;
		for (i = 0; i < tupdesc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);

			if (att->attisdropped)
				continue;
			init_column(&cap->columns[cap->ncolumns++], rel,
						NameStr(att->attname), NameStr(att->attname), cap->mcxt);
		}
	}
	else
	{
		if ((nargs - pos) % 2 != 0)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" on relation \"%s\" has invalid mfgsync arguments",
							trigger->tgname, RelationGetRelationName(rel)),
					 errhint("Create capture triggers with mfgsync.track().")));
		cap->ncolumns = (nargs - pos) / 2;
		cap->columns = palloc(sizeof(MfgCaptureColumn) * cap->ncolumns);
		for (i = 0; i < cap->ncolumns; i++)
			init_column(&cap->columns[i], rel, args[pos + 2 * i],
						args[pos + 2 * i + 1], cap->mcxt);
	}

	/* key columns, under their domain name where they are mapped */
	cap->keys = palloc(sizeof(MfgCaptureColumn) * cap->nkeys);
	for (i = 0; i < cap->nkeys; i++)
	{
		const char *colname = args[3 + i];
		const char *domain = colname;
		int			j;

		for (j = pos; j + 1 < nargs; j += 2)
			if (strcmp(args[j], colname) == 0)
				domain = args[j + 1];
		init_column(&cap->keys[i], rel, colname, domain, cap->mcxt);
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextSetParent(cap->mcxt, CacheMemoryContext);
	cap->valid = true;
}

/*
 * get_capture
 *		The cached mapping of the trigger's relation, (re)built if needed.
 */
static MfgCapture *
get_capture(Relation rel, Trigger *trigger)
{
	Oid			relid = RelationGetRelid(rel);
	MfgCapture *cap;
	MfgCapture	fresh;
	bool		found;

	if (capture_cache == NULL)
	{
		HASHCTL		ctl;

		/* register first: a cache without its invalidation must not exist */
		CacheRegisterRelcacheCallback(invalidate_capture, (Datum) 0);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(MfgCapture);
		capture_cache = hash_create("mfgsync capture cache", 64, &ctl,
									HASH_ELEM | HASH_BLOBS);
	}

	cap = hash_search(capture_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		cap->valid = false;
		cap->mcxt = NULL;
	}
	if (cap->valid)
		return cap;

	/* on error the entry stays invalid and is rebuilt on the next call */
	build_capture(&fresh, rel, trigger);
	if (cap->mcxt)
		MemoryContextDelete(cap->mcxt);
	*cap = fresh;
	cap->relid = relid;
	return cap;
}

/*
 * render_object
 *		Reset buf to a JSON object of the given columns of slot.
 */
static void
render_object(StringInfo buf, MfgCaptureColumn *cols, int ncols,
			  TupleTableSlot *slot)
{
	int			i;

	resetStringInfo(buf);
	appendStringInfoChar(buf, '{');
	for (i = 0; i < ncols; i++)
	{
		Datum		value;
		bool		isnull;

		if (i > 0)
			appendStringInfoChar(buf, ',');
		appendStringInfoString(buf, cols[i].jsonkey);
		value = slot_getattr(slot, cols[i].attnum, &isnull);
		mfgsync_json_append_value(buf, value, isnull, &cols[i].type);
	}
	appendStringInfoChar(buf, '}');
}

/*
 * open_reader
 *		A private, rewindable read pointer on a transition table, leaving the
 *		positions other triggers use untouched.
 */
static int
open_reader(Tuplestorestate *ts)
{
	return tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
}

/*
 * rewind_reader
 *		Select read pointer ptr of ts and move it to the first row.
 */
static void
rewind_reader(Tuplestorestate *ts, int ptr)
{
	tuplestore_select_read_pointer(ts, ptr);
	tuplestore_rescan(ts);
}

/* the state of one capture_rows call, shared by its passes */
typedef struct MfgCapturePass
{
	MfgCapture *cap;			/* the mapping */
	Relation	rel;			/* the tracked table */
	Tuplestorestate *oldtable;	/* old rows, or NULL (INSERT) */
	Tuplestorestate *newtable;	/* new rows, or NULL (DELETE) */
	int			oldptr;			/* our read pointer in oldtable */
	int			newptr;			/* our read pointer in newtable */
	TupleTableSlot *oldslot;	/* current old row */
	TupleTableSlot *newslot;	/* current new row */
	MemoryContext rowcxt;		/* reset after every row */
	MfgOutboxWriter *writer;	/* where events go */
	bool		deletes_done;	/* key-change Deletes already written */
	StringInfoData key;			/* rendered new key */
	StringInfoData oldkey;		/* rendered old key */
	StringInfoData data;		/* rendered new row */
	StringInfoData olddata;		/* rendered old row */
} MfgCapturePass;

/*
 * capture_pass
 *		One pass over the transition tables (UPDATE: both, stored pairwise in
 *		the same order), writing events.
 *
 * With key_deletes, only the Delete of each row whose key changed is
 * written; without it, everything else: Add, Delete, Change, and for a row
 * whose key changed the Add of the new key, preceded by the Delete of the
 * old one unless a key_deletes pass already wrote it.  Running the
 * key_deletes pass first puts every Delete of a multi-row statement before
 * its Adds, so a statement that shifts keys through each other (id = id + 1
 * under a deferrable key) replays to the same rows.
 */
static void
capture_pass(MfgCapturePass *p, bool key_deletes)
{
	MfgCapture *cap = p->cap;

	if (p->oldtable)
		rewind_reader(p->oldtable, p->oldptr);
	if (p->newtable)
		rewind_reader(p->newtable, p->newptr);

	for (;;)
	{
		bool		have_old;
		bool		have_new;
		bool		key_changed;
		MemoryContext oldcxt;

		CHECK_FOR_INTERRUPTS();
		have_old = p->oldtable &&
			tuplestore_gettupleslot(p->oldtable, true, false, p->oldslot);
		have_new = p->newtable &&
			tuplestore_gettupleslot(p->newtable, true, false, p->newslot);
		if (!have_old && !have_new)
			break;
		if (p->oldtable && p->newtable && have_old != have_new)
			elog(ERROR, "transition tables of relation \"%s\" differ in length",
				 RelationGetRelationName(p->rel));

		oldcxt = MemoryContextSwitchTo(p->rowcxt);
		if (have_new)
			render_object(&p->key, cap->keys, cap->nkeys, p->newslot);
		if (have_old)
			render_object(&p->oldkey, cap->keys, cap->nkeys, p->oldslot);
		key_changed = have_old && have_new &&
			strcmp(p->key.data, p->oldkey.data) != 0;

		/* the Delete of a changed key: in its own pass, or else inline */
		if (key_changed && (key_deletes || !p->deletes_done))
		{
			render_object(&p->olddata, cap->columns, cap->ncolumns, p->oldslot);
			mfgsync_outbox_append(p->writer, cap->message_type,
								  MFGSYNC_ACTION_DELETE, p->oldkey.data,
								  NULL, p->olddata.data);
		}
		if (!key_deletes)
		{
			if (have_new)
				render_object(&p->data, cap->columns, cap->ncolumns, p->newslot);
			if (have_old && !key_changed)
				render_object(&p->olddata, cap->columns, cap->ncolumns, p->oldslot);

			if (!have_old || key_changed)
				mfgsync_outbox_append(p->writer, cap->message_type,
									  MFGSYNC_ACTION_ADD, p->key.data,
									  p->data.data, NULL);
			else if (!have_new)
				mfgsync_outbox_append(p->writer, cap->message_type,
									  MFGSYNC_ACTION_DELETE, p->oldkey.data,
									  NULL, p->olddata.data);
			else if (strcmp(p->data.data, p->olddata.data) != 0)
				mfgsync_outbox_append(p->writer, cap->message_type,
									  MFGSYNC_ACTION_CHANGE, p->key.data,
									  p->data.data, p->olddata.data);
		}
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(p->rowcxt);
	}
}

/*
 * capture_rows
 *		Write the events of one statement from its transition tables
 *		(INSERT: new only, DELETE: old only, UPDATE: both).
 *
 * A statement that changed no row writes nothing and assigns no
 * transaction id.
 */
static void
capture_rows(MfgCapture *cap, Relation rel, Tuplestorestate *oldtable,
			 Tuplestorestate *newtable)
{
	MfgCapturePass p;
	int64		nrows = tuplestore_tuple_count(newtable ? newtable : oldtable);

	if (nrows == 0)
		return;

	memset(&p, 0, sizeof(p));
	p.cap = cap;
	p.rel = rel;
	p.oldtable = oldtable;
	p.newtable = newtable;
	if (oldtable)
	{
		p.oldptr = open_reader(oldtable);
		p.oldslot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	}
	if (newtable)
	{
		p.newptr = open_reader(newtable);
		p.newslot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	}
	p.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "mfgsync capture row",
									 ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&p.key);
	initStringInfo(&p.oldkey);
	initStringInfo(&p.data);
	initStringInfo(&p.olddata);
	p.writer = mfgsync_outbox_open(nrows, false);

	/* one row cannot shift keys through another: then one pass will do */
	if (oldtable && newtable && nrows > 1)
	{
		capture_pass(&p, true);
		p.deletes_done = true;
	}
	capture_pass(&p, false);

	mfgsync_outbox_close(p.writer);
	MemoryContextDelete(p.rowcxt);
	if (p.oldslot)
		ExecDropSingleTupleTableSlot(p.oldslot);
	if (p.newslot)
		ExecDropSingleTupleTableSlot(p.newslot);
}

/*
 * capture_truncate
 *		BEFORE TRUNCATE: refuse, or write one Truncate event.
 */
static void
capture_truncate(MfgCapture *cap, Relation rel)
{
	MfgOutboxWriter *w;

	if (!cap->truncate_event)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot truncate relation \"%s\" because mfgsync tracks it",
						RelationGetRelationName(rel)),
				 errdetail("TRUNCATE removes rows without row-level change events."),
				 errhint("Use DELETE, call mfgsync.track() with truncate_event => true to emit a Truncate event, or call mfgsync.untrack() first.")));

	w = mfgsync_outbox_open(1, true);
	mfgsync_outbox_append(w, cap->message_type, MFGSYNC_ACTION_TRUNCATE,
						  NULL, NULL, NULL);
	mfgsync_outbox_close(w);
}

/*
 * mfgsync_capture
 *		The capture trigger (SQL: mfgsync.capture()).
 *
 * Must be fired FOR EACH STATEMENT: AFTER INSERT/UPDATE/DELETE with the
 * transition tables of its event, or BEFORE TRUNCATE.  Anything else raises
 * ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED.
 */
Datum
mfgsync_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	MfgCapture *cap;
	Tuplestorestate *oldtable = NULL;
	Tuplestorestate *newtable = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"mfgsync.capture\" was not called by trigger manager")));
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_FOR_STATEMENT(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"mfgsync.capture\" must be fired FOR EACH STATEMENT")));

	if (TRIGGER_FIRED_BY_TRUNCATE(event))
	{
		if (!TRIGGER_FIRED_BEFORE(event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("function \"mfgsync.capture\" must be fired BEFORE TRUNCATE")));
	}
	else
	{
		if (!TRIGGER_FIRED_AFTER(event))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("function \"mfgsync.capture\" must be fired AFTER INSERT, UPDATE or DELETE")));
		if (!TRIGGER_FIRED_BY_INSERT(event))
			oldtable = trigdata->tg_oldtable;
		if (!TRIGGER_FIRED_BY_DELETE(event))
			newtable = trigdata->tg_newtable;
		if ((!TRIGGER_FIRED_BY_INSERT(event) && oldtable == NULL) ||
			(!TRIGGER_FIRED_BY_DELETE(event) && newtable == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("function \"mfgsync.capture\" needs the transition tables of its event"),
					 errhint("Create capture triggers with mfgsync.track().")));
	}

	cap = get_capture(trigdata->tg_relation, trigdata->tg_trigger);
	if (TRIGGER_FIRED_BY_TRUNCATE(event))
		capture_truncate(cap, trigdata->tg_relation);
	else
		capture_rows(cap, trigdata->tg_relation, oldtable, newtable);

	return PointerGetDatum(NULL);
}

/*
 * mfgsync_record_trigger_dependencies
 *		Make every capture trigger on a relation depend on the extension
 *		(SQL: mfgsync.record_trigger_dependencies(regclass), used by
 *		mfgsync.track()).
 *
 * The dependency is automatic, so DROP EXTENSION removes the triggers it
 * made without CASCADE, while the triggers stay ordinary objects of the
 * table for pg_dump.
 */
Datum
mfgsync_record_trigger_dependencies(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ObjectAddress extension;
	Oid			capture_fn;
	Relation	tgrel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tuple;

	ObjectAddressSet(extension, ExtensionRelationId,
					 get_extension_oid(MFGSYNC_NAME, false));
	capture_fn = LookupFuncName(list_make2(makeString(MFGSYNC_NAME),
										   makeString("capture")),
								0, NULL, false);

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&skey, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1, &skey);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tuple);
		ObjectAddress trigger;

		if (tg->tgfoid != capture_fn)
			continue;
		ObjectAddressSet(trigger, TriggerRelationId, tg->oid);
		recordDependencyOn(&trigger, &extension, DEPENDENCY_AUTO);
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	PG_RETURN_VOID();
}
