/*-------------------------------------------------------------------------
 *
 * http_fdw_limit.c
 *		  mfgsync_http: per-server rate limit and daily budget
 *
 * A server's rate_limit ("N/interval") is a token bucket in shared memory
 * that every backend draws from before each request: up to N requests at
 * once, then N per interval.  A backend that finds the bucket empty waits
 * (interruptibly) for the next token.  daily_budget counts requests per
 * UTC day; when it is spent, scans fail until midnight UTC instead of
 * waiting hours.  The counts survive restarts: they are written to
 * $PGDATA/mfgsync_http_budget after every counted request (write and
 * rename, without fsync: a crash may forget the last requests).
 *
 * Slots are keyed by (database, server) and there are MFG_LIMIT_SLOTS of
 * them; when all are in use the least recently used one is taken over.
 * One LWLock protects them all; it is held only to do arithmetic and to
 * write the small budget file, never while waiting.
 *
 * The library is always loaded by shared_preload_libraries (_PG_init
 * refuses anything else), so the shared memory always exists.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw_limit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include <unistd.h>

#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"


#define MFG_LIMIT_SLOTS 64
#define MFG_BUDGET_FILE "mfgsync_http_budget"
#define MFG_BUDGET_MAGIC 0x6d666231

typedef struct MfgLimitSlot
{
	Oid			dbid;			/* InvalidOid: free */
	Oid			serverid;
	double		tokens;			/* requests that may start now */
	TimestampTz refilled;		/* when tokens was computed */
	TimestampTz used_at;		/* for replacing the least recent slot */
	int32		day;			/* UTC day number of "spent" */
	int32		spent;			/* requests counted against the budget */
} MfgLimitSlot;

typedef struct MfgLimitShared
{
	LWLock	   *lock;
	MfgLimitSlot slot[MFG_LIMIT_SLOTS];
} MfgLimitShared;

static MfgLimitShared *limit_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
limit_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(MfgLimitShared)));
	RequestNamedLWLockTranche("mfgsync http_fdw", 1);
}

/* read the budget counts written before the last shutdown */
static void
load_budget(void)
{
	FILE	   *f = AllocateFile(MFG_BUDGET_FILE, PG_BINARY_R);
	uint32		magic;
	int			i;

	if (f == NULL)
		return;
	if (fread(&magic, sizeof(magic), 1, f) == 1 && magic == MFG_BUDGET_MAGIC)
	{
		for (i = 0; i < MFG_LIMIT_SLOTS; i++)
		{
			MfgLimitSlot s;

			if (fread(&s, sizeof(s), 1, f) != 1)
				break;
			limit_shared->slot[i].dbid = s.dbid;
			limit_shared->slot[i].serverid = s.serverid;
			limit_shared->slot[i].day = s.day;
			limit_shared->slot[i].spent = s.spent;
			limit_shared->slot[i].tokens = -1;	/* refill on first use */
		}
	}
	FreeFile(f);
}

/* write every slot's budget count; called with the lock held */
static void
save_budget(void)
{
	FILE	   *f;
	uint32		magic = MFG_BUDGET_MAGIC;
	bool		ok;

	f = AllocateFile(MFG_BUDGET_FILE ".tmp", PG_BINARY_W);
	if (f == NULL)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", MFG_BUDGET_FILE ".tmp")));
		return;
	}
	ok = fwrite(&magic, sizeof(magic), 1, f) == 1 &&
		fwrite(limit_shared->slot, sizeof(MfgLimitSlot), MFG_LIMIT_SLOTS, f) ==
		MFG_LIMIT_SLOTS;
	if (FreeFile(f) != 0)
		ok = false;
	if (!ok || rename(MFG_BUDGET_FILE ".tmp", MFG_BUDGET_FILE) != 0)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", MFG_BUDGET_FILE)));
}

static void
limit_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	limit_shared = ShmemInitStruct("mfgsync http_fdw limits",
								   sizeof(MfgLimitShared), &found);
	if (!found)
	{
		memset(limit_shared, 0, sizeof(MfgLimitShared));
		limit_shared->lock = &(GetNamedLWLockTranche("mfgsync http_fdw"))->lock;
		load_budget();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * mfgsync_http_fdw_init
 *		Reserve the wrapper's shared memory; called once from _PG_init.
 */
void
mfgsync_http_fdw_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = limit_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = limit_shmem_startup;
}

/* the slot of t's server in this database; lock held exclusively */
static MfgLimitSlot *
find_slot(MfgFdwTable *t, TimestampTz now)
{
	MfgLimitSlot *oldest = NULL;
	int			i;

	for (i = 0; i < MFG_LIMIT_SLOTS; i++)
	{
		MfgLimitSlot *s = &limit_shared->slot[i];

		if (s->dbid == MyDatabaseId && s->serverid == t->serverid)
		{
			s->used_at = now;
			return s;
		}
		if (oldest == NULL || s->dbid == InvalidOid ||
			(oldest->dbid != InvalidOid && s->used_at < oldest->used_at))
			oldest = s;
	}
	memset(oldest, 0, sizeof(MfgLimitSlot));
	oldest->dbid = MyDatabaseId;
	oldest->serverid = t->serverid;
	oldest->tokens = -1;
	oldest->used_at = now;
	return oldest;
}

/*
 * mfgsync_fdw_limit_acquire
 *		Wait until t's server may be sent one more request, and count it.
 *		Raises when the daily budget is spent, and on query cancel while
 *		waiting.
 */
void
mfgsync_fdw_limit_acquire(MfgFdwTable *t)
{
	if (t->rate_calls == 0 && t->daily_budget == 0)
		return;
	if (limit_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the rate limit of server \"%s\" needs mfgsync in \"shared_preload_libraries\"",
						t->servername)));

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		MfgLimitSlot *s;
		long		wait = 0;
		int32		day = (int32) (now / USECS_PER_DAY);

		LWLockAcquire(limit_shared->lock, LW_EXCLUSIVE);
		s = find_slot(t, now);
		if (t->daily_budget > 0)
		{
			if (s->day != day)
			{
				s->day = day;
				s->spent = 0;
			}
			if (s->spent >= t->daily_budget)
			{
				LWLockRelease(limit_shared->lock);
				ereport(ERROR,
						(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
						 errmsg("the daily request budget of server \"%s\" (%d requests) is spent",
								t->servername, t->daily_budget),
						 errhint("The budget starts again at midnight UTC; the server's daily_budget option sets it.")));
			}
		}
		if (t->rate_calls > 0)
		{
			double		per_ms = (double) t->rate_calls / (double) t->rate_interval_ms;

			if (s->tokens < 0)
				s->tokens = t->rate_calls;
			else
				s->tokens = Min((double) t->rate_calls,
								s->tokens + per_ms * (double) (now - s->refilled) / 1000.0);
			s->refilled = now;
			if (s->tokens >= 1)
				s->tokens -= 1;
			else
				wait = (long) ((1 - s->tokens) / per_ms) + 1;
		}
		if (wait == 0 && t->daily_budget > 0)
		{
			s->spent++;
			save_budget();
		}
		LWLockRelease(limit_shared->lock);
		if (wait == 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

PG_FUNCTION_INFO_V1(mfgsync_http_budget_spent);

/*
 * mfgsync_http_budget_spent
 *		SQL function mfgsync.http_budget_spent(server text): requests
 *		counted today against the server's daily budget in this database.
 *		Raises when there is no such server.
 */
Datum
mfgsync_http_budget_spent(PG_FUNCTION_ARGS)
{
	Oid			serverid = GetForeignServerByName(text_to_cstring(PG_GETARG_TEXT_PP(0)),
												  false)->serverid;
	TimestampTz now = GetCurrentTimestamp();
	int32		day = (int32) (now / USECS_PER_DAY);
	int32		spent = 0;
	int			i;

	if (limit_shared == NULL)
		PG_RETURN_NULL();
	LWLockAcquire(limit_shared->lock, LW_SHARED);
	for (i = 0; i < MFG_LIMIT_SLOTS; i++)
	{
		MfgLimitSlot *s = &limit_shared->slot[i];

		if (s->dbid == MyDatabaseId && s->serverid == serverid && s->day == day)
			spent = s->spent;
	}
	LWLockRelease(limit_shared->lock);
	PG_RETURN_INT32(spent);
}
