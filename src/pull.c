/*-------------------------------------------------------------------------
 *
 * pull.c
 *		  Pull jobs: source checks, scheduling and the run worker
 *
 * A run itself is SQL (mfgsync.pull_execute in sql/install/60_pull.sql):
 * it reads the source into a temporary table and MERGEs it into the
 * target.  This file holds what SQL cannot do:
 *
 * - mfgsync.pull_source_columns() parses a source and reports its columns
 *   without running it, and refuses anything but one plain SELECT (no
 *   second statement, no SELECT INTO, no FOR UPDATE, no data-modifying
 *   WITH), so a source can never write.
 * - The launcher (src/launcher.c) calls mfgsync_pull_schedule() once per
 *   loop: it starts a dynamic background worker for each due job, at most
 *   mfgsync.max_pull_workers at a time, never two for one job.
 * - mfgsync_pull_main() is that worker: transaction 1 commits a "running"
 *   row, transaction 2 runs the job as its owner (the job's advisory lock
 *   also keeps manual and pg_cron runs from overlapping it), and on error
 *   transaction 3 records the failure and the back-off.  No transaction
 *   spans two of these steps, so a failure rolls back the run's writes and
 *   watermark but keeps its log row.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/pull.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "mfgsync.h"
#include "pull.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(mfgsync_pull_source_columns);
PG_FUNCTION_INFO_V1(mfgsync_pull_notify_launcher);

/* a worker the launcher started for a job */
typedef struct MfgPullRun
{
	int32		job_id;			/* mfgsync.pull_job.id */
	BackgroundWorkerHandle *handle; /* NULL once it has stopped */
	TimestampTz started;		/* when the launcher started it */
} MfgPullRun;

/* the launcher's workers, in TopMemoryContext */
static List *pull_runs = NIL;

/* set the launcher's latch when this backend's transaction commits */
static bool notify_pending = false;
static bool notify_callback_registered = false;

/*
 * check_select
 *		Raise unless the raw parse tree is one plain SELECT that cannot
 *		write or lock.
 */
static void
check_select(List *raw)
{
	RawStmt    *rs;
	SelectStmt *sel;
	ListCell   *lc;

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pull job source must be a single query"),
				 errhint("Give one SELECT statement, without a semicolon between statements.")));
	rs = linitial_node(RawStmt, raw);
	if (!IsA(rs->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pull job source must be a SELECT query"),
				 errdetail("A pull job never writes to its source.")));
	sel = (SelectStmt *) rs->stmt;
	if (sel->intoClause != NULL || sel->lockingClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pull job source must not use SELECT INTO or a locking clause"),
				 errdetail("A pull job never writes to or locks rows of its source.")));
	if (sel->withClause != NULL)
	{
		foreach(lc, sel->withClause->ctes)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

			if (!IsA(cte->ctequery, SelectStmt))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pull job source must not contain a data-modifying WITH query"),
						 errdetail("A pull job never writes to its source.")));
		}
	}
}

/*
 * mfgsync_pull_source_columns
 *		SQL function pull_source_columns(source text): the name and type of
 *		every column the source yields.  source is a query (a relation is
 *		passed as TABLE <name>).  The source is parsed and analysed,
 *		never planned or run, so a foreign server is not contacted.  Raises
 *		on syntax errors, on anything but one plain SELECT, and on duplicate
 *		column names.
 */
Datum
mfgsync_pull_source_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *raw;
	SPIPlanPtr	plan;
	CachedPlanSource *ps;
	TupleDesc	desc;
	int			i,
				j;

	raw = raw_parser(query, RAW_PARSE_DEFAULT);
	check_select(raw);

	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	ps = linitial(SPI_plan_get_plan_sources(plan));
	desc = ps->resultDesc;
	if (desc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pull job source returns no rows")));

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (att->attisdropped)
			continue;
		for (j = 0; j < i; j++)
		{
			if (!TupleDescAttr(desc, j)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(desc, j)->attname),
					   NameStr(att->attname)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("pull job source has more than one column named \"%s\"",
								NameStr(att->attname)),
						 errhint("Give the columns distinct names in the query.")));
		}
		values[0] = CStringGetTextDatum(NameStr(att->attname));
		values[1] = CStringGetTextDatum(format_type_with_typemod(att->atttypid,
																 att->atttypmod));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Waking the launcher when the schedule changes
 * ---------------------------------------------------------------------
 */

static void
notify_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (notify_pending && mfgsync_shared != NULL &&
				mfgsync_shared->launcher_latch != NULL)
				SetLatch(mfgsync_shared->launcher_latch);
			notify_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			notify_pending = false;
			break;
		default:
			break;
	}
}

/*
 * mfgsync_pull_notify_launcher
 *		SQL function: the launcher re-reads the pull schedule when this
 *		transaction commits.  create_pull, alter_pull and drop_pull call it.
 */
Datum
mfgsync_pull_notify_launcher(PG_FUNCTION_ARGS)
{
	if (!notify_callback_registered)
	{
		RegisterXactCallback(notify_xact_callback, NULL);
		notify_callback_registered = true;
	}
	notify_pending = true;
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * The launcher's side
 * ---------------------------------------------------------------------
 */

/*
 * mfgsync_pull_schedule
 *		One scheduling step of the launcher, between its transactions:
 *		forget stopped workers, start one for each due job that has none
 *		(oldest due first, within mfgsync.max_pull_workers), and lower
 *		*wait_ms to the time until the next job is due.  A worker's exit
 *		sets the launcher's latch (bgw_notify_pid).  Errors reading the
 *		schedule are logged and retried on the next step.
 */
void
mfgsync_pull_schedule(long *wait_ms)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;
	int			running = 0;
	int			ndue = 0;
	int32	   *due_job = NULL;
	Oid		   *due_owner = NULL;
	int			i;

	if (mfgsync_max_pull_workers <= 0)
		return;

	/* forget stopped workers; a job restarts at most once a second */
	foreach(lc, pull_runs)
	{
		MfgPullRun *run = lfirst(lc);
		pid_t		pid;

		if (run->handle != NULL &&
			GetBackgroundWorkerPid(run->handle, &pid) == BGWH_STOPPED)
		{
			pfree(run->handle);
			run->handle = NULL;
		}
		if (run->handle != NULL)
			running++;
		else if (now >= TimestampTzPlusMilliseconds(run->started, 1000))
		{
			pull_runs = foreach_delete_current(pull_runs, lc);
			pfree(run);
		}
	}

	PG_TRY();
	{
		uint64		n;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "SELECT * FROM mfgsync.pull_due()");
		if (SPI_execute("SELECT job_id, owner, wait_ms FROM mfgsync.pull_due()",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the pull schedule");
		n = SPI_processed;
		due_job = MemoryContextAlloc(oldcxt, sizeof(int32) * (n + 1));
		due_owner = MemoryContextAlloc(oldcxt, sizeof(Oid) * (n + 1));
		for (i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int64		ms = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));

			if (ms > 0)
			{
				*wait_ms = Min(*wait_ms, (long) Min(ms, (int64) LONG_MAX));
				continue;
			}
			due_job[ndue] = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			due_owner[ndue] = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
			ndue++;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ndue = 0;
		*wait_ms = Min(*wait_ms, 1000);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	for (i = 0; i < ndue; i++)
	{
		MfgPullRun *run = NULL;

		foreach(lc, pull_runs)
		{
			if (((MfgPullRun *) lfirst(lc))->job_id == due_job[i])
				run = lfirst(lc);
		}
		if (run != NULL)
		{
			/* running (its exit wakes us), or stopped less than 1 s ago */
			if (run->handle == NULL)
				*wait_ms = Min(*wait_ms,
							   Max(1, TimestampDifferenceMilliseconds(now,
																	  TimestampTzPlusMilliseconds(run->started, 1000))));
			continue;
		}
		if (running >= mfgsync_max_pull_workers)
			break;				/* a finishing worker wakes us */
		run = MemoryContextAllocZero(TopMemoryContext, sizeof(MfgPullRun));
		run->job_id = due_job[i];
		run->started = now;
		run->handle = mfgsync_start_worker("mfgsync_pull_main", "mfgsync pull",
										   psprintf("mfgsync pull job %d", due_job[i]),
										   due_job[i], &due_owner[i], sizeof(Oid),
										   "Raise \"max_worker_processes\" to leave room for mfgsync.max_pull_workers.");
		if (run->handle != NULL)
			running++;
		else
			*wait_ms = Min(*wait_ms, 1000);
		{
			MemoryContext cxt = MemoryContextSwitchTo(TopMemoryContext);

			pull_runs = lappend(pull_runs, run);
			MemoryContextSwitchTo(cxt);
		}
	}
	if (due_job != NULL)
	{
		pfree(due_job);
		pfree(due_owner);
	}
}

/* ---------------------------------------------------------------------
 * The run worker
 * ---------------------------------------------------------------------
 */

/*
 * run_sql
 *		Run one statement with int parameters in its own transaction;
 *		returns the first column of its first row as int64 (0 if none).
 *		Errors propagate.
 */
static int64
run_sql(const char *sql, int nargs, Oid *types, Datum *values)
{
	int64		result = 0;
	bool		isnull = true;
	Datum		d;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, sql);
	if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 1) < 0)
		elog(ERROR, "could not run \"%s\"", sql);
	if (SPI_processed > 0 && SPI_tuptable->tupdesc->natts > 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull && SPI_gettypeid(SPI_tuptable->tupdesc, 1) == INT8OID)
			result = DatumGetInt64(d);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/*
 * mfgsync_pull_main
 *		A dynamic background worker running one scheduled run of job
 *		main_arg as its owner (bgw_extra), then exiting.
 */
void
mfgsync_pull_main(Datum main_arg)
{
	int32		job_id = DatumGetInt32(main_arg);
	Oid			owner;
	MemoryContext cxt;
	int64		run_id;
	Oid			types[4] = {INT4OID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[4];

	memcpy(&owner, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(mfgsync_database, NULL, 0);
	pgstat_report_appname(psprintf("mfgsync pull %d", job_id));
	cxt = AllocSetContextCreate(TopMemoryContext, "mfgsync pull worker",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);

	/* 1: the run's row, committed, so that a run in progress shows */
	values[0] = Int32GetDatum(job_id);
	run_id = run_sql("SELECT mfgsync.pull_begin($1, 'schedule')", 1, types, values);
	values[1] = Int64GetDatum(run_id);

	/* 2: the run, as the job's owner */
	PG_TRY();
	{
		Oid			save_userid;
		int			save_sec_context;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(owner)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("owner of pull job %d no longer exists", job_id)));
		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "SELECT mfgsync.pull_scheduled($1, $2)");
		if (SPI_execute_with_args("SELECT mfgsync.pull_scheduled($1, $2)", 2,
								  types, values, NULL, false, 1) < 0)
			elog(ERROR, "could not run mfgsync.pull_scheduled");
		SPI_finish();
		PopActiveSnapshot();
		SetUserIdAndSecContext(save_userid, save_sec_context);
		CommitTransactionCommand();
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* 3: the failure, in a fresh transaction (abort restores the user) */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("mfgsync pull job %d failed: %s", job_id, edata->message)));
		values[2] = CStringGetTextDatum(edata->message);
		values[3] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		(void) run_sql("SELECT mfgsync.pull_failed($1, $2, $3, $4)", 4, types, values);
	}
	PG_END_TRY();

	proc_exit(0);
}
