/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		  The launcher worker, shared state, and waking senders on commit
 *
 * The postmaster starts one launcher (a static background worker).  It
 * connects to mfgsync.database, waits until the extension exists there,
 * keeps mfgsync.max_workers sender workers running, and retires settled
 * events (mfgsync.retire()) every tenth of mfgsync.retention, at least once
 * a minute and at most once a second.  It also starts a worker for each
 * pull job that is due (mfgsync_pull_schedule, src/pull.c).
 *
 * Senders do not poll.  A backend whose transaction wrote events, or
 * changed endpoints, sets the senders' latches when it commits, from a
 * transaction callback registered once per backend.  Only the fallback
 * timer (mfgsync.poll_interval) catches what no callback reports, such
 * as COMMIT PREPARED.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "mfgsync.h"
#include "pull.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(mfgsync_notify_senders);

MfgSharedState *mfgsync_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* what this backend's transaction asks of the senders at commit */
static bool wake_pending = false;
static bool config_pending = false;
static bool xact_callback_registered = false;

static Size
shared_state_size(void)
{
	return add_size(offsetof(MfgSharedState, sender),
					mul_size(sizeof(MfgSenderSlot), mfgsync_max_workers));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_state_size());
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mfgsync_shared = ShmemInitStruct("mfgsync", shared_state_size(), &found);
	if (!found)
	{
		memset(mfgsync_shared, 0, shared_state_size());
		pg_atomic_init_u32(&mfgsync_shared->config_generation, 0);
		pg_atomic_init_u32(&mfgsync_shared->launcher_generation, 0);
		mfgsync_shared->nsenders = mfgsync_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * mfgsync_worker_init
 *		Reserve shared memory and register the launcher; from _PG_init.
 */
void
mfgsync_worker_init(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, MFGSYNC_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "mfgsync_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "mfgsync launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "mfgsync launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * wake_workers
 *		Wake the senders that serve endpoints (all of them for a
 *		configuration change).
 *
 * A sender sets has_endpoints before it takes the snapshot of its next
 * claim, and our commit is visible before we read the flag: a sender we
 * skip sees our events in that snapshot.
 */
static void
wake_workers(bool all)
{
	int			i;

	if (mfgsync_shared == NULL)
		return;
	pg_memory_barrier();
	for (i = 0; i < mfgsync_shared->nsenders; i++)
	{
		Latch	   *latch = mfgsync_shared->sender[i].latch;

		if (latch != NULL && (all || mfgsync_shared->sender[i].has_endpoints))
			SetLatch(latch);
	}
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (config_pending)
			{
				pg_atomic_fetch_add_u32(&mfgsync_shared->config_generation, 1);
				if (mfgsync_shared->launcher_latch != NULL)
					SetLatch(mfgsync_shared->launcher_latch);
			}
			if (wake_pending || config_pending)
				wake_workers(config_pending);
			wake_pending = config_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_pending = config_pending = false;
			break;
		default:
			break;
	}
}

static void
register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * mfgsync_wake_on_commit
 *		Have the senders woken when the current transaction commits.
 *
 * Called by the outbox writer for every statement that wrote events; the
 * callback is registered once per backend, not once per transaction.
 */
void
mfgsync_wake_on_commit(void)
{
	if (!wake_pending)
	{
		register_xact_callback();
		wake_pending = true;
	}
}

/*
 * mfgsync_notify_on_commit
 *		Have the senders re-read endpoints when the current transaction
 *		commits (a sender that pauses an endpoint tells the endpoint's
 *		other shards so).
 */
void
mfgsync_notify_on_commit(void)
{
	register_xact_callback();
	config_pending = true;
}

/*
 * mfgsync_notify_senders
 *		SQL function: mfgsync_notify_on_commit.  The management functions
 *		call it.
 */
Datum
mfgsync_notify_senders(PG_FUNCTION_ARGS)
{
	mfgsync_notify_on_commit();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/*
 * mfgsync_extension_exists
 *		Does the extension exist in this database?  Runs in its own
 *		transaction; the launcher and the senders ask between theirs.
 */
bool
mfgsync_extension_exists(void)
{
	bool		exists;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	exists = OidIsValid(get_extension_oid(MFGSYNC_NAME, true));
	CommitTransactionCommand();
	return exists;
}

/*
 * mfgsync_start_worker
 *		Start one of the launcher's dynamic workers: function is its entry
 *		point in this library, main_arg its argument and extra (up to
 *		BGW_EXTRALEN bytes) goes to bgw_extra.  The launcher restarts its
 *		workers, not the postmaster (BGW_NEVER_RESTART: after a crash the
 *		postmaster would restart them and the new launcher start a second
 *		set); a worker's exit sets the launcher's latch (bgw_notify_pid).
 *		Returns NULL, with a WARNING carrying hint, if no slot is free.
 */
BackgroundWorkerHandle *
mfgsync_start_worker(const char *function, const char *type, const char *name,
					 int32 main_arg, const void *extra, Size extralen,
					 const char *hint)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	Assert(extralen <= BGW_EXTRALEN);
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, MFGSYNC_NAME);
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
	worker.bgw_main_arg = Int32GetDatum(main_arg);
	if (extralen > 0)
		memcpy(worker.bgw_extra, extra, extralen);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start %s", name),
				 errhint("%s", hint)));
		return NULL;
	}
	return handle;
}

/* run mfgsync.retire(); an error is logged and retried next time */
static void
retire_events(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "SELECT mfgsync.retire()");
		SPI_execute("SELECT mfgsync.retire()", false, 1);
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
	}
	PG_END_TRY();
}

void
mfgsync_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle **senders;
	TimestampTz *started;
	TimestampTz next_retire = 0;
	bool		waiting_logged = false;
	int			i;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(mfgsync_database, NULL, 0);
	pgstat_report_appname("mfgsync launcher");
	mfgsync_shared->launcher_latch = MyLatch;

	/*
	 * Senders of an earlier launcher (one that was terminated alone) exit
	 * when they see this; ours wait for their slot's lock (src/sender.c).
	 */
	pg_atomic_fetch_add_u32(&mfgsync_shared->launcher_generation, 1);
	wake_workers(true);

	senders = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * mfgsync_max_workers);
	started = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(TimestampTz) * mfgsync_max_workers);

	for (;;)
	{
		long		wait_ms = 10000;
		TimestampTz now;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_retire = 0;	/* mfgsync.retention may have changed */
		}

		if (!mfgsync_extension_exists())
		{
			if (!waiting_logged)
				ereport(LOG,
						(errmsg("mfgsync launcher waiting: extension \"%s\" does not exist in database \"%s\"",
								MFGSYNC_NAME, mfgsync_database),
						 errhint("Run CREATE EXTENSION %s in database \"%s\", or set mfgsync.database.",
								 MFGSYNC_NAME, mfgsync_database)));
			waiting_logged = true;
		}
		else
		{
			waiting_logged = false;
			now = GetCurrentTimestamp();
			for (i = 0; i < mfgsync_max_workers; i++)
			{
				pid_t		pid;
				TimestampTz allowed = TimestampTzPlusMilliseconds(started[i], 1000);

				if (senders[i] != NULL &&
					GetBackgroundWorkerPid(senders[i], &pid) != BGWH_STOPPED)
					continue;
				/* a sender that keeps failing is restarted once a second */
				if (now < allowed)
				{
					wait_ms = Min(wait_ms, TimestampDifferenceMilliseconds(now, allowed) + 1);
					continue;
				}
				senders[i] = mfgsync_start_worker("mfgsync_sender_main", "mfgsync sender",
												  psprintf("mfgsync sender %d", i),
												  i, NULL, 0,
												  "Raise \"max_worker_processes\" to at least mfgsync.max_workers plus what else runs.");
				started[i] = now;
			}

			/* every tenth of the retention, between 1 s and 1 min apart */
			if (now >= next_retire)
			{
				retire_events();
				next_retire = TimestampTzPlusMilliseconds(now,
														  Max(1000, Min(60000, (int64) mfgsync_retention * 100)));
			}
			wait_ms = Min(wait_ms, Max(1, TimestampDifferenceMilliseconds(now, next_retire)));

			/* pull jobs that are due get a worker each (src/pull.c) */
			mfgsync_pull_schedule(&wait_ms);
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
	}
}
