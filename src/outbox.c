/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		  Writing change events into the transactional outbox (and reading
 *		  one back for the previews)
 *
 * Events are inserted into mfgsync.outbox by the capture trigger, inside
 * the transaction that made the change: they commit and roll back with it.
 * The insert goes straight to the table AM (heap multi-insert, then each
 * index), not through SPI or the executor:
 *
 *	- it is several times cheaper per event than SPI, and bulk statements
 *	  write one WAL record per outbox page instead of one per event;
 *	- it does no permission check, so a role that may write a tracked table
 *	  needs (and gets) no privilege on the outbox, just as foreign-key
 *	  triggers check referenced tables regardless of the writer's rights.
 *
 * The outbox is the extension's own table, so its shape is checked when it
 * is opened and its indexes must be plain column indexes, whole or
 * restricted to rows where a boolean column is true (B-trees on id and, for
 * the xact_first events only, txid, which the senders need to read windows
 * in id ranges; see the comment on mfgsync.outbox in sql/mfgsync--0.1.sql).
 *
 * Ordering invariants the delivery side relies on:
 *	- every event stores the top-level transaction's xid8 (as int8); a reader that
 *	  takes events of the transactions that became visible between two of
 *	  its snapshots (mfgsync.read_events) reads in commit order and can never
 *	  skip an event, whatever order the ids were drawn in;
 *	- an event's id is drawn after its row was locked, so a later writer of
 *	  the same key draws a larger id, provided every backend draws from one
 *	  counter: no backend may hand out values it set aside earlier.
 *
 * Event ids.  Calling nextval() for every event was a sizeable part of a
 * single-row statement's capture cost.  Instead mfgsync.event_id_seq hands
 * out blocks (MFGSYNC_ID_BLOCK ids each: INCREMENT BY 1000 and CACHE 1,
 * both checked), and each database's current block lives in shared memory,
 * where every backend of that database draws from it under a spinlock: one
 * counter, so the invariant above holds.  A block is replaced only by the
 * next one nextval() returns after it was installed (the generation check
 * in draw_event_id), and only if it starts above the block before it, so
 * ids only grow: a sequence set back by setval() is refused, its values
 * are never handed out again.  The sequence stays the durable record: ids
 * of a block are handed out only after nextval() logged it, a restart
 * starts a new block, and pg_dump keeps the sequence.  setval() forward
 * takes effect with the next block.  A database that finds no free slot
 * (more than MFGSYNC_ID_DATABASES use mfgsync) calls nextval() for every
 * event, until the next restart: never a mix of both within one database.
 *
 * Nested statements.  A statement run by a trigger (or by anything its
 * after-triggers call) changes rows after the statement that fired the
 * trigger did, but the capture trigger of that outer statement fires last:
 * after-row triggers fire before after-statement ones.  Written at once,
 * the nested statement's events would get the smaller ids, and a receiver
 * would apply a key's changes in the wrong order.  So the statements whose
 * after-triggers are firing (ExecutorFinish) are counted as nesting
 * frames; a capture in frame 2 or deeper keeps its events in a tuplestore,
 * and each frame hands its own events, then those of the frames it ran, to
 * the frame around it.  Frame 1 writes them after its own captures wrote
 * directly.  Events of subtransactions that rolled back meanwhile are
 * dropped; see "Events of nested statements" below.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/outbox.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "mfgsync.h"
#include "outbox.h"
#include "worker.h"

/* events buffered before one multi-insert */
#define MFGSYNC_OUTBOX_BUFFER 1000
/* databases whose event id block is kept in shared memory */
#define MFGSYNC_ID_DATABASES 32

/* columns of mfgsync.outbox, in order */
enum
{
	OUTBOX_ID,
	OUTBOX_TXID,
	OUTBOX_MESSAGE_TYPE,
	OUTBOX_ACTION,
	OUTBOX_KEY,
	OUTBOX_DATA,
	OUTBOX_OLD_DATA,
	OUTBOX_CREATED_AT,
	OUTBOX_XACT_FIRST,
	OUTBOX_NATTS
};

/*
 * columns of an event kept for later (see "Events of nested statements"):
 * the outbox's from message_type to old_data, then the subtransaction
 */
enum
{
	NESTED_MESSAGE_TYPE,
	NESTED_ACTION,
	NESTED_KEY,
	NESTED_DATA,
	NESTED_OLD_DATA,
	NESTED_SUBID,
	NESTED_NATTS
};

/*
 * What every writer needs to know about the outbox, kept per backend: the
 * OIDs of the table and its sequence, and the indexes to fill with their
 * IndexInfo.  A relcache invalidation of the outbox (which index creation,
 * index state changes and DROP send) or of the sequence clears it, so it
 * is as fresh as the relcache; writers check it after locking the outbox,
 * when pending invalidations have been processed.
 */
typedef struct MfgOutboxCache
{
	bool		valid;			/* false: rebuild before use */
	Oid			relid;			/* mfgsync.outbox */
	Oid			seqid;			/* mfgsync.event_id_seq */
	int			nindexes;		/* indexes ready for inserts, -1: not read */
	Oid		   *indexoids;		/* their OIDs */
	IndexInfo **indexinfos;		/* their IndexInfo */
	AttrNumber *predattrs;		/* boolean column of a partial index's
								 * predicate, or 0 */
	MemoryContext cxt;			/* owns the arrays and the IndexInfos */
} MfgOutboxCache;

static MfgOutboxCache outbox_cache;

/* one database's block of event ids (see "Event ids" above) */
typedef struct MfgIdBlock
{
	Oid			dbid;			/* InvalidOid: slot unused */
	Oid			seqid;			/* the sequence the block came from */
	uint64		generation;		/* bumped whenever a block is installed */
	int64		next;			/* next id to hand out */
	int64		last;			/* last id of the block */
} MfgIdBlock;

typedef struct MfgIdShared
{
	slock_t		mutex;			/* protects every block */
	MfgIdBlock	block[MFGSYNC_ID_DATABASES];
} MfgIdShared;

static MfgIdShared *id_shared = NULL;
/* this backend's database's block; NULL: not looked up, or none free */
static MfgIdBlock *my_id_block = NULL;
static bool my_id_block_looked_up = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Events kept for later (see "Events of nested statements"): a tuplestore
 * with its own memory context and resource owner (which owns the file it
 * spills to), so that it can be thrown away at any time, even during error
 * recovery, without writing anything.
 */
typedef struct MfgKept
{
	Tuplestorestate *ts;
	MemoryContext cxt;			/* holds ts; child of TopTransactionContext */
	ResourceOwner owner;		/* child of TopTransactionResourceOwner */
} MfgKept;

/* one nesting frame's kept events */
typedef struct MfgNestFrame
{
	MfgKept    *own;			/* of its statement's captures */
	MfgKept    *nested;			/* of the statements its triggers ran */
} MfgNestFrame;

/* frames open: statements whose after-triggers may be firing */
static int	nest_depth = 0;

/*
 * Until the last frame ends, in TopTransactionContext: frames[1..nframes]
 * (NULL: nothing kept yet), and the subtransactions rolled back meanwhile
 * as disjoint [first, last] id ranges, in ascending order.
 */
static MfgNestFrame *nest_frames = NULL;
static int	nest_nframes = 0;
static SubTransactionId *nest_rolled_back = NULL;	/* 2 ids per range */
static int	nest_nrolled_back = 0;
static int	nest_maxrolled_back = 0;

/* the subtransaction started last in this transaction */
static SubTransactionId nest_last_subid = InvalidSubTransactionId;

/* a kept event's columns (NESTED_*), in TopMemoryContext */
static TupleDesc nest_desc = NULL;

/* the frame a COPY FROM runs in, whose captures it fires itself; or 0 */
static int	copy_depth = 0;

static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

static MfgKept *frame_store(int depth, bool own);
static MfgOutboxWriter *open_writer(int64 expected_rows, int frame, bool own);
static void nest_executor_finish(QueryDesc *queryDesc);
static void nest_process_utility(PlannedStmt *pstmt, const char *queryString,
								 bool readOnlyTree,
								 ProcessUtilityContext context,
								 ParamListInfo params,
								 QueryEnvironment *queryEnv,
								 DestReceiver *dest, QueryCompletion *qc);
static void nest_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);
static void nest_xact_callback(XactEvent event, void *arg);

struct MfgOutboxWriter
{
	MemoryContext cxt;			/* where the writer and its slots live */
	int			frame;			/* > 0: keep the events in this nesting
								 * frame, open nothing below */
	bool		own;			/* in its "own" store, else its "nested" one */
	Relation	rel;			/* mfgsync.outbox, RowExclusiveLock */
	int			nindexes;		/* number of indexes to fill */
	Relation   *indexrels;		/* the indexes, RowExclusiveLock */
	IndexInfo **indexinfos;		/* their IndexInfo (outbox_cache's) */
	AttrNumber *predattrs;		/* their predicate column (outbox_cache's) */
	Oid			seqid;			/* mfgsync.event_id_seq */
	Datum		txid;			/* top-level xid8 of this transaction, as int8 */
	Datum		created_at;		/* statement start time */
	CommandId	cid;			/* command id for the inserts */
	BulkInsertState bistate;	/* for large statements, else NULL */
	MemoryContext bufcxt;		/* buffered events and what the table AM
								 * allocates to insert them; reset per flush */
	int			maxslots;		/* size of slots[] */
	int			nslots;			/* slots created so far */
	int			nbuffered;		/* slots holding unflushed events */
	TupleTableSlot **slots;		/* event buffer */
};

/*
 * outbox_relid
 *		OID of relation relname in the mfgsync schema; errors if missing.
 */
static Oid
outbox_relid(const char *relname)
{
	Oid			nspid = get_namespace_oid(MFGSYNC_NAME, false);
	Oid			relid = get_relname_relid(relname, nspid);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist",
						MFGSYNC_NAME, relname),
				 errhint("Reinstall the extension with DROP EXTENSION mfgsync and CREATE EXTENSION mfgsync.")));
	return relid;
}

/*
 * check_id_sequence
 *		Check that the values of mfgsync.event_id_seq can serve as blocks of
 *		event ids.
 */
static void
check_id_sequence(Oid seqid)
{
	HeapTuple	tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid));
	Form_pg_sequence seq;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for sequence %u", seqid);
	seq = (Form_pg_sequence) GETSTRUCT(tuple);
	if (seq->seqcache != 1 || seq->seqincrement != MFGSYNC_ID_BLOCK)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sequence \"%s.event_id_seq\" must have INCREMENT BY %d and CACHE 1",
						MFGSYNC_NAME, MFGSYNC_ID_BLOCK),
				 errdetail("Event ids must grow in the order events are written, across all sessions."),
				 errhint("Run ALTER SEQUENCE %s.event_id_seq INCREMENT BY %d CACHE 1.",
						 MFGSYNC_NAME, MFGSYNC_ID_BLOCK)));
	ReleaseSysCache(tuple);
}

/*
 * invalidate_outbox_cache
 *		Relcache callback: forget the outbox's OIDs and indexes when the
 *		outbox, its sequence or everything (InvalidOid) is invalidated.
 */
static void
invalidate_outbox_cache(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == outbox_cache.relid ||
		relid == outbox_cache.seqid)
		outbox_cache.valid = false;
}

/*
 * reset_outbox_cache
 *		Start a new, empty cache with the current OIDs.
 *
 * The previous IndexInfos may still be used by a writer that is open
 * further up the stack (a type's output function could write to a tracked
 * table), so they live on until the end of the transaction.
 */
static void
reset_outbox_cache(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(invalidate_outbox_cache, (Datum) 0);
		registered = true;
	}
	if (outbox_cache.cxt)
		MemoryContextSetParent(outbox_cache.cxt, TopTransactionContext);
	outbox_cache.cxt = AllocSetContextCreate(CacheMemoryContext,
											 "mfgsync outbox cache",
											 ALLOCSET_SMALL_SIZES);
	outbox_cache.nindexes = -1;
	outbox_cache.relid = outbox_relid("outbox");
	outbox_cache.seqid = outbox_relid("event_id_seq");
	check_id_sequence(outbox_cache.seqid);
	outbox_cache.valid = true;
}

/*
 * open_outbox
 *		The outbox, locked, with outbox_cache valid for it.
 *
 * Locking processes pending invalidations, which may clear the cache just
 * read; then the lookups are repeated.
 */
static Relation
open_outbox(void)
{
	for (;;)
	{
		Relation	rel;

		if (!outbox_cache.valid)
			reset_outbox_cache();
		rel = try_table_open(outbox_cache.relid, RowExclusiveLock);
		if (rel != NULL && outbox_cache.valid)
			return rel;
		if (rel != NULL)
			table_close(rel, RowExclusiveLock);
		outbox_cache.valid = false;
	}
}

/*
 * predicate_column
 *		0 for an index without predicate, the column of a predicate that is
 *		just a boolean column ("WHERE xact_first"), and -1 for any other.
 */
static AttrNumber
predicate_column(List *predicate)
{
	Var		   *var;

	if (predicate == NIL)
		return 0;
	if (list_length(predicate) != 1 || !IsA(linitial(predicate), Var))
		return -1;
	var = (Var *) linitial(predicate);
	if (var->vartype != BOOLOID || var->varattno <= 0)
		return -1;
	return var->varattno;
}

/*
 * read_outbox_indexes
 *		Fill outbox_cache's index list from rel (the outbox, locked).
 */
static void
read_outbox_indexes(Relation rel)
{
	List	   *indexoids = RelationGetIndexList(rel);
	MemoryContext oldcxt = MemoryContextSwitchTo(outbox_cache.cxt);
	ListCell   *lc;
	int			n = 0;

	outbox_cache.indexoids = palloc(sizeof(Oid) * Max(list_length(indexoids), 1));
	outbox_cache.indexinfos = palloc(sizeof(IndexInfo *) * Max(list_length(indexoids), 1));
	outbox_cache.predattrs = palloc(sizeof(AttrNumber) * Max(list_length(indexoids), 1));
	foreach(lc, indexoids)
	{
		Relation	indexrel = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *info = BuildIndexInfo(indexrel);

		/* an index being built concurrently is not ours to fill yet */
		if (info->ii_ReadyForInserts)
		{
			AttrNumber	predattr = predicate_column(info->ii_Predicate);

			/*
			 * Only B-tree: the IndexInfo is kept across statements, and other
			 * access methods cache per-statement state in it (ii_AmCache)
			 * that points into the index's relcache entry.
			 */
			if (indexrel->rd_rel->relam != BTREE_AM_OID ||
				info->ii_Expressions != NIL || predattr < 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("index \"%s\" on mfgsync.outbox is not supported",
								RelationGetRelationName(indexrel)),
						 errdetail("The capture trigger maintains only B-tree indexes of plain columns of the outbox, whole or restricted to rows where one boolean column is true."),
						 errhint("Drop the index, or create a B-tree index of plain columns of mfgsync.outbox.")));
			outbox_cache.indexoids[n] = RelationGetRelid(indexrel);
			outbox_cache.predattrs[n] = predattr;
			outbox_cache.indexinfos[n++] = info;
		}
		index_close(indexrel, NoLock);
	}
	MemoryContextSwitchTo(oldcxt);
	list_free(indexoids);
	outbox_cache.nindexes = n;
}

/* ---------------------------------------------------------------------
 * Event ids (see "Event ids" at the top)
 * ---------------------------------------------------------------------
 */

static void
id_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(MfgIdShared)));
}

static void
id_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	id_shared = ShmemInitStruct("mfgsync event ids", sizeof(MfgIdShared), &found);
	if (!found)
	{
		memset(id_shared, 0, sizeof(MfgIdShared));
		SpinLockInit(&id_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * mfgsync_outbox_init
 *		Reserve the shared memory for event id blocks and install the hooks
 *		that order nested statements' events; called once from _PG_init.
 */
void
mfgsync_outbox_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = id_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = id_shmem_startup;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = nest_executor_finish;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = nest_process_utility;
	RegisterXactCallback(nest_xact_callback, NULL);
	RegisterSubXactCallback(nest_subxact_callback, NULL);
}

/*
 * find_id_block
 *		This database's block slot, taking a free one on first use; NULL
 *		when every slot belongs to another database.  Slots are never given
 *		back (a dropped database keeps its slot until the next restart), so
 *		the answer never changes while this backend lives.
 */
static MfgIdBlock *
find_id_block(void)
{
	MfgIdBlock *found = NULL;
	int			i;

	if (my_id_block_looked_up)
		return my_id_block;

	SpinLockAcquire(&id_shared->mutex);
	for (i = 0; i < MFGSYNC_ID_DATABASES && found == NULL; i++)
		if (id_shared->block[i].dbid == MyDatabaseId)
			found = &id_shared->block[i];
	for (i = 0; i < MFGSYNC_ID_DATABASES && found == NULL; i++)
		if (id_shared->block[i].dbid == InvalidOid)
		{
			found = &id_shared->block[i];
			found->dbid = MyDatabaseId;
		}
	SpinLockRelease(&id_shared->mutex);

	if (found == NULL)
		ereport(LOG,
				(errmsg("mfgsync: more than %d databases write events; event ids of database %u come from nextval()",
						MFGSYNC_ID_DATABASES, MyDatabaseId)));
	my_id_block = found;
	my_id_block_looked_up = true;
	return found;
}

/*
 * draw_event_id
 *		The next event id of this database.
 *
 * When the block is used up, nextval() (without holding the spinlock)
 * returns the first id of a new one.  It is installed only if no other
 * backend installed one meanwhile; otherwise it is left unused (a gap) and
 * the other one is drawn from.  Either way every block installed was
 * obtained after the previous one was installed; one that would start
 * inside it (the sequence was set back) is an error.  So ids keep growing.
 */
static int64
draw_event_id(Oid seqid)
{
	MfgIdBlock *b = find_id_block();

	if (b == NULL)
		return nextval_internal(seqid, false);

	for (;;)
	{
		int64		id = 0;
		bool		got = false;
		uint64		generation;
		int64		first;
		bool		went_back = false;
		int64		last_used = 0;

		SpinLockAcquire(&id_shared->mutex);
		if (b->seqid != seqid)
		{
			/* the extension was created anew: start from its sequence */
			b->seqid = seqid;
			b->next = 1;
			b->last = 0;
			b->generation++;
		}
		if (b->next <= b->last)
		{
			id = b->next++;
			got = true;
		}
		generation = b->generation;
		SpinLockRelease(&id_shared->mutex);
		if (got)
			return id;

		first = nextval_internal(seqid, false);

		SpinLockAcquire(&id_shared->mutex);
		if (b->seqid == seqid && b->generation == generation)
		{
			if (first > b->last)
			{
				b->next = first;
				b->last = first + MFGSYNC_ID_BLOCK - 1;
				b->generation++;
			}
			else
			{
				went_back = true;
				last_used = b->last;
			}
		}
		SpinLockRelease(&id_shared->mutex);
		if (went_back)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("sequence \"%s.event_id_seq\" was set back below event ids already handed out",
							MFGSYNC_NAME),
					 errdetail("It returned %lld, but ids up to %lld are in use.",
							   (long long) first, (long long) last_used),
					 errhint("Run SELECT setval('%s.event_id_seq', %lld).",
							 MFGSYNC_NAME, (long long) last_used)));
	}
}

/*
 * xact_first
 *		Whether the next event is the first of its transaction, or the first
 *		since the current subtransaction changed: only these are in the
 *		outbox's txid index (see mfgsync.outbox).
 *
 * Every committed event then has a committed xact_first event of its own
 * subtransaction at or below its id, so the smallest id of a transaction's
 * committed events is that of one of its xact_first events.  (An event of
 * a subtransaction that rolled back is gone with it; marking only a
 * transaction's very first event could mark such a one.)
 */
static bool
xact_first(void)
{
	static FullTransactionId last = {0};
	FullTransactionId current = GetCurrentFullTransactionId();

	if (FullTransactionIdEquals(current, last))
		return false;
	last = current;
	return true;
}

/*
 * mfgsync_outbox_open
 *		Prepare to append events to the outbox in this transaction.
 *
 * expected_rows is a hint: large statements use a bulk-insert strategy.
 * The returned writer and everything it allocates live in the
 * CurrentMemoryContext of this call, whatever context later calls are made
 * in; it must be finished with mfgsync_outbox_close, which writes the
 * buffered events.
 *
 * truncating: the events are written by a BEFORE TRUNCATE trigger, which
 * fires while its statement runs, not in a frame of its own (as COPY FROM
 * fires its AFTER triggers).  In a nested statement the writer keeps the
 * events instead (see "Events of nested statements"); they reach the outbox
 * when frame 1 ends.
 */
MfgOutboxWriter *
mfgsync_outbox_open(int64 expected_rows, bool truncating)
{
	/* fired while its statement runs, in the frame around it, if any */
	bool		in_statement = truncating || nest_depth == copy_depth;

	if (in_statement && nest_depth > 0)
		return open_writer(expected_rows, nest_depth, false);
	if (!in_statement && nest_depth > 1)
		return open_writer(expected_rows, nest_depth, true);
	return open_writer(expected_rows, 0, false);
}

/*
 * open_writer
 *		A writer to the outbox (frame 0), or one that keeps the events in
 *		frame's own or nested store.
 */
static MfgOutboxWriter *
open_writer(int64 expected_rows, int frame, bool own)
{
	MfgOutboxWriter *w = palloc0(sizeof(MfgOutboxWriter));
	int			i;

	w->cxt = CurrentMemoryContext;
	w->bufcxt = AllocSetContextCreate(CurrentMemoryContext,
									  "mfgsync outbox buffer",
									  ALLOCSET_DEFAULT_SIZES);
	w->frame = frame;
	w->own = own;
	if (frame > 0)
		return w;

	w->rel = open_outbox();
	if (RelationGetDescr(w->rel)->natts != OUTBOX_NATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"mfgsync.outbox\" has %d columns, expected %d",
						RelationGetDescr(w->rel)->natts, OUTBOX_NATTS),
				 errhint("Reinstall the extension with DROP EXTENSION mfgsync and CREATE EXTENSION mfgsync.")));
	if (outbox_cache.nindexes < 0)
		read_outbox_indexes(w->rel);

	/* the cache's arrays stay valid while this writer is open (see above) */
	w->nindexes = outbox_cache.nindexes;
	w->indexinfos = outbox_cache.indexinfos;
	w->predattrs = outbox_cache.predattrs;
	w->indexrels = palloc(sizeof(Relation) * Max(w->nindexes, 1));
	for (i = 0; i < w->nindexes; i++)
		w->indexrels[i] = index_open(outbox_cache.indexoids[i], RowExclusiveLock);

	w->seqid = outbox_cache.seqid;
	w->txid = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	w->created_at = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	w->cid = GetCurrentCommandId(true);
	w->bistate = expected_rows >= MFGSYNC_OUTBOX_BUFFER ? GetBulkInsertState() : NULL;
	w->maxslots = (int) Min(Max(expected_rows, 1), MFGSYNC_OUTBOX_BUFFER);
	w->slots = palloc(sizeof(TupleTableSlot *) * w->maxslots);
	return w;
}

/*
 * flush
 *		Insert the buffered events into the outbox and its indexes.
 */
static void
flush(MfgOutboxWriter *w)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	int			i;
	int			j;
	MemoryContext oldcxt;

	if (w->nbuffered == 0)
		return;

	/* heap_multi_insert's tuple array and TOAST copies are ours to free */
	oldcxt = MemoryContextSwitchTo(w->bufcxt);

	/* a single-row statement is the common case: skip multi-insert set-up */
	if (w->nbuffered == 1)
		table_tuple_insert(w->rel, w->slots[0], w->cid, 0, w->bistate);
	else
		table_multi_insert(w->rel, w->slots, w->nbuffered, w->cid, 0,
						   w->bistate);
	for (i = 0; i < w->nbuffered; i++)
	{
		TupleTableSlot *slot = w->slots[i];

		for (j = 0; j < w->nindexes; j++)
		{
			Relation	indexrel = w->indexrels[j];
			AttrNumber	predattr = w->predattrs[j];

			if (predattr > 0 &&
				(slot->tts_isnull[predattr - 1] ||
				 !DatumGetBool(slot->tts_values[predattr - 1])))
				continue;
			FormIndexDatum(w->indexinfos[j], slot, NULL, values, isnull);
			index_insert(indexrel, values, isnull, &slot->tts_tid, w->rel,
						 indexrel->rd_index->indisunique ?
						 UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
						 false, w->indexinfos[j]);
		}
		ExecClearTuple(slot);
	}
	MemoryContextSwitchTo(oldcxt);
	w->nbuffered = 0;
	MemoryContextReset(w->bufcxt);
}

/*
 * buffer_event
 *		Buffer one event, given its columns from message_type to old_data
 *		(indexed NESTED_*, allocated in w->bufcxt), with the next event id.
 *
 * The caller has flushed a full buffer before allocating the columns.
 */
static void
buffer_event(MfgOutboxWriter *w, Datum *values, bool *isnull)
{
	TupleTableSlot *slot;
	MemoryContext oldcxt;
	int			i;

	Assert(w->nbuffered < w->maxslots);
	if (w->nbuffered == w->nslots)
	{
		oldcxt = MemoryContextSwitchTo(w->cxt);
		w->slots[w->nslots++] = table_slot_create(w->rel, NULL);
		MemoryContextSwitchTo(oldcxt);
	}
	slot = w->slots[w->nbuffered++];

	ExecClearTuple(slot);
	memset(slot->tts_isnull, false, OUTBOX_NATTS * sizeof(bool));
	slot->tts_values[OUTBOX_ID] = Int64GetDatum(draw_event_id(w->seqid));
	slot->tts_values[OUTBOX_TXID] = w->txid;
	for (i = NESTED_MESSAGE_TYPE; i <= NESTED_OLD_DATA; i++)
	{
		slot->tts_values[OUTBOX_MESSAGE_TYPE + i] = values[i];
		slot->tts_isnull[OUTBOX_MESSAGE_TYPE + i] = isnull[i];
	}
	slot->tts_values[OUTBOX_CREATED_AT] = w->created_at;
	slot->tts_values[OUTBOX_XACT_FIRST] = BoolGetDatum(xact_first());
	ExecStoreVirtualTuple(slot);
}

/*
 * text_or_null
 *		Set a json column from a C string, or to NULL.
 */
static void
text_or_null(Datum *values, bool *isnull, int col, const char *s)
{
	isnull[col] = (s == NULL);
	values[col] = s ? PointerGetDatum(cstring_to_text(s)) : (Datum) 0;
}

/*
 * mfgsync_outbox_append
 *		Buffer one event; it is written at the next flush or at close.
 *
 * key, data and old_data are JSON texts or NULL; they are copied.  The
 * event id is drawn now, so ids follow the order of appends (for a writer
 * of a nested statement, when frame 1 writes the event).
 */
void
mfgsync_outbox_append(MfgOutboxWriter *w, text *message_type,
					  const char *action, const char *key, const char *data,
					  const char *old_data)
{
	Datum		values[NESTED_NATTS];
	bool		isnull[NESTED_NATTS];
	MemoryContext oldcxt;

	if (w->frame == 0 && w->nbuffered == w->maxslots)
		flush(w);

	oldcxt = MemoryContextSwitchTo(w->bufcxt);
	values[NESTED_MESSAGE_TYPE] =
		PointerGetDatum(DatumGetTextPCopy(PointerGetDatum(message_type)));
	isnull[NESTED_MESSAGE_TYPE] = false;
	values[NESTED_ACTION] = CStringGetTextDatum(action);
	isnull[NESTED_ACTION] = false;
	text_or_null(values, isnull, NESTED_KEY, key);
	text_or_null(values, isnull, NESTED_DATA, data);
	text_or_null(values, isnull, NESTED_OLD_DATA, old_data);
	if (w->frame > 0)
	{
		MfgKept    *k = frame_store(w->frame, w->own);

		values[NESTED_SUBID] = Int32GetDatum(GetCurrentSubTransactionId());
		isnull[NESTED_SUBID] = false;
		tuplestore_putvalues(k->ts, nest_desc, values, isnull);
		MemoryContextReset(w->bufcxt);
	}
	else
		buffer_event(w, values, isnull);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * mfgsync_outbox_close
 *		Write what is buffered and release the writer.
 *
 * Locks are kept until the end of the transaction, as for any DML.  The
 * senders are woken when the transaction commits.
 */
void
mfgsync_outbox_close(MfgOutboxWriter *w)
{
	int			i;

	if (w->frame == 0)
	{
		flush(w);
		mfgsync_wake_on_commit();
		for (i = 0; i < w->nslots; i++)
			ExecDropSingleTupleTableSlot(w->slots[i]);
		for (i = 0; i < w->nindexes; i++)
			index_close(w->indexrels[i], NoLock);
		if (w->bistate)
			FreeBulkInsertState(w->bistate);
		table_close(w->rel, NoLock);
		pfree(w->indexrels);
		pfree(w->slots);
	}
	MemoryContextDelete(w->bufcxt);
	pfree(w);
}

/* ---------------------------------------------------------------------
 * Events of nested statements (see "Nested statements" at the top)
 *
 * Every ExecutorFinish, which fires its statement's after-triggers, is a
 * frame.  A writer opened by the capture of a statement in frame d > 1
 * keeps its events in frame d's "own" store.  When frame d ends it appends
 * its own events, then its "nested" ones, to frame d - 1's "nested" store;
 * frame 1 writes its "nested" store to the outbox after its own captures
 * wrote theirs directly.  So a statement's events come before those of the
 * statements its triggers ran, and those in the order they ran.
 *
 * TRUNCATE and COPY FROM fire their triggers themselves, outside
 * ExecutorFinish: run inside a frame, their events are kept in the "nested"
 * store of that frame, after what the statements run before them kept
 * (copy_depth marks the frame a COPY FROM runs in).  A foreign-key action
 * (ON DELETE CASCADE ...) fires no triggers of its own: its changes are
 * captured with those of the statement whose frame it runs in.
 *
 * Each kept event carries the subtransaction it was captured in.  All
 * subtransactions started inside a frame end inside it, and ids grow as
 * they start, so when one rolls back, every kept event of it or of its
 * children has an id from its own to the last one started: that range is
 * remembered and its events are not written.  A frame left by an error
 * drops what it kept: all of it is from the subtransaction the error rolls
 * back.
 * ---------------------------------------------------------------------
 */

/*
 * new_kept
 *		An empty store of kept events.
 */
static MfgKept *
new_kept(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopTransactionContext,
											  "mfgsync kept events",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	ResourceOwner oldowner = CurrentResourceOwner;
	MfgKept    *k = palloc(sizeof(MfgKept));

	if (nest_desc == NULL)
	{
		TupleDesc	desc;

		MemoryContextSwitchTo(TopMemoryContext);
		desc = CreateTemplateTupleDesc(NESTED_NATTS);
		TupleDescInitEntry(desc, NESTED_MESSAGE_TYPE + 1, "message_type", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, NESTED_ACTION + 1, "action", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, NESTED_KEY + 1, "key", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, NESTED_DATA + 1, "data", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, NESTED_OLD_DATA + 1, "old_data", TEXTOID, -1, 0);
		TupleDescInitEntry(desc, NESTED_SUBID + 1, "subid", INT4OID, -1, 0);
		nest_desc = desc;
		MemoryContextSwitchTo(cxt);
	}

	/* a tuplestore opens its file under the owner current at its creation */
	k->cxt = cxt;
	k->owner = ResourceOwnerCreate(TopTransactionResourceOwner,
								   "mfgsync kept events");
	CurrentResourceOwner = k->owner;
	k->ts = tuplestore_begin_heap(false, false, work_mem);
	CurrentResourceOwner = oldowner;
	MemoryContextSwitchTo(oldcxt);
	return k;
}

/*
 * drop_kept
 *		Throw *k away (closing and removing its file, if any) and set it to
 *		NULL.  Writes nothing, so it is safe during error recovery.
 */
static void
drop_kept(MfgKept **k)
{
	if (*k == NULL)
		return;
	/* a tuplestore failing to create its file leaves its owner current */
	if (CurrentResourceOwner == (*k)->owner)
		CurrentResourceOwner = TopTransactionResourceOwner;
	ResourceOwnerRelease((*k)->owner, RESOURCE_RELEASE_BEFORE_LOCKS, false, false);
	ResourceOwnerRelease((*k)->owner, RESOURCE_RELEASE_LOCKS, false, false);
	ResourceOwnerRelease((*k)->owner, RESOURCE_RELEASE_AFTER_LOCKS, false, false);
	ResourceOwnerDelete((*k)->owner);
	MemoryContextDelete((*k)->cxt);
	*k = NULL;
}

/*
 * frame_store
 *		Frame depth's store of its own events or of nested ones, created on
 *		first use.
 */
static MfgKept *
frame_store(int depth, bool own)
{
	MfgKept   **k;

	if (depth > nest_nframes)
	{
		int			n = Max(depth, 2 * nest_nframes);

		if (nest_frames == NULL)
			nest_frames = MemoryContextAllocZero(TopTransactionContext,
												 sizeof(MfgNestFrame) * (n + 1));
		else
		{
			nest_frames = repalloc(nest_frames, sizeof(MfgNestFrame) * (n + 1));
			memset(nest_frames + nest_nframes + 1, 0,
				   sizeof(MfgNestFrame) * (n - nest_nframes));
		}
		nest_nframes = n;
	}
	k = own ? &nest_frames[depth].own : &nest_frames[depth].nested;
	if (*k == NULL)
		*k = new_kept();
	return *k;
}

/*
 * pass_kept
 *		Append the events of *from to *to (taking *from over if *to is NULL)
 *		and drop *from.
 */
static void
pass_kept(MfgKept **from, MfgKept **to)
{
	TupleTableSlot *slot;

	if (*from == NULL)
		return;
	if (*to == NULL)
	{
		*to = *from;
		*from = NULL;
		return;
	}
	slot = MakeSingleTupleTableSlot(nest_desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot((*from)->ts, true, false, slot))
	{
		slot_getallattrs(slot);
		tuplestore_putvalues((*to)->ts, nest_desc, slot->tts_values, slot->tts_isnull);
	}
	ExecDropSingleTupleTableSlot(slot);
	drop_kept(from);
}

/*
 * rolled_back
 *		Whether subtransaction subid rolled back while events were kept.
 */
static bool
rolled_back(SubTransactionId subid)
{
	int			lo = 0;
	int			hi = nest_nrolled_back - 1;

	/* the last range starting at or below subid is the only candidate */
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (nest_rolled_back[2 * mid] <= subid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return hi >= 0 && subid <= nest_rolled_back[2 * hi + 1];
}

/*
 * write_kept
 *		Write the events of *k that did not roll back to the outbox, in
 *		order, and drop *k.
 */
static void
write_kept(MfgKept **k)
{
	MemoryContext cxt;
	MemoryContext oldcxt;
	TupleTableSlot *slot;
	MfgOutboxWriter *w = NULL;
	Datum		values[NESTED_NATTS];
	int			i;

	if (*k == NULL)
		return;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "mfgsync nested events",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	slot = MakeSingleTupleTableSlot(nest_desc, &TTSOpsMinimalTuple);
	while (tuplestore_gettupleslot((*k)->ts, true, false, slot))
	{
		slot_getallattrs(slot);
		if (rolled_back(DatumGetInt32(slot->tts_values[NESTED_SUBID])))
			continue;
		if (w == NULL)
			w = open_writer(tuplestore_tuple_count((*k)->ts), 0, false);
		if (w->nbuffered == w->maxslots)
			flush(w);
		MemoryContextSwitchTo(w->bufcxt);
		for (i = NESTED_MESSAGE_TYPE; i <= NESTED_OLD_DATA; i++)
			values[i] = slot->tts_isnull[i] ? (Datum) 0 :
				datumCopy(slot->tts_values[i], false, -1);
		buffer_event(w, values, slot->tts_isnull);
		MemoryContextSwitchTo(cxt);
	}
	if (w)
		mfgsync_outbox_close(w);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	drop_kept(k);
}

/*
 * forget_frames
 *		After the last frame ended: nothing is kept any more.
 */
static void
forget_frames(void)
{
	if (nest_frames)
		pfree(nest_frames);
	nest_frames = NULL;
	nest_nframes = 0;
	nest_nrolled_back = 0;
}

/*
 * end_frame
 *		Leave the innermost frame after its statement ran: hand what it kept
 *		to the frame around it, or, leaving frame 1, write it.
 */
static void
end_frame(void)
{
	if (nest_depth <= nest_nframes)
	{
		MfgNestFrame *f = &nest_frames[nest_depth];

		if (nest_depth > 1)
		{
			pass_kept(&f->own, &nest_frames[nest_depth - 1].nested);
			pass_kept(&f->nested, &nest_frames[nest_depth - 1].nested);
		}
		else
		{
			/* frame 1's captures wrote directly: it keeps only nested ones */
			Assert(f->own == NULL);
			write_kept(&f->nested);
		}
	}
	nest_depth--;
	if (nest_depth == 0)
		forget_frames();
}

/*
 * drop_frame
 *		Leave the innermost frame on error, dropping what it kept.
 */
static void
drop_frame(void)
{
	int			depth = nest_depth--;

	if (depth <= nest_nframes)
	{
		drop_kept(&nest_frames[depth].own);
		drop_kept(&nest_frames[depth].nested);
	}
	if (nest_depth == 0)
		forget_frames();
}

/*
 * nest_executor_finish
 *		ExecutorFinish hook: the statement's after-triggers fire in a frame.
 */
static void
nest_executor_finish(QueryDesc *queryDesc)
{
	nest_depth++;
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
		end_frame();
	}
	PG_CATCH();
	{
		drop_frame();
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * nest_process_utility
 *		ProcessUtility hook: mark the frame a COPY FROM runs in.
 */
static void
nest_process_utility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	int			saved_copy_depth = copy_depth;

	if (IsA(pstmt->utilityStmt, CopyStmt) &&
		((CopyStmt *) pstmt->utilityStmt)->is_from)
		copy_depth = nest_depth;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		copy_depth = saved_copy_depth;
	}
	PG_END_TRY();
}

/*
 * nest_subxact_callback
 *		Remember the subtransactions that roll back while events are kept.
 *
 * A range starting at or above the new one's start is one of its children:
 * the new range replaces it, which keeps the ranges disjoint and sorted.
 */
static void
nest_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_START_SUB)
		nest_last_subid = mySubid;
	else if (event == SUBXACT_EVENT_ABORT_SUB && nest_frames != NULL)
	{
		while (nest_nrolled_back > 0 &&
			   nest_rolled_back[2 * (nest_nrolled_back - 1)] >= mySubid)
			nest_nrolled_back--;
		if (nest_nrolled_back == nest_maxrolled_back)
		{
			nest_maxrolled_back = Max(16, 2 * nest_maxrolled_back);
			nest_rolled_back = nest_rolled_back ?
				repalloc(nest_rolled_back,
						 2 * nest_maxrolled_back * sizeof(SubTransactionId)) :
				MemoryContextAlloc(TopTransactionContext,
								   2 * nest_maxrolled_back * sizeof(SubTransactionId));
		}
		nest_rolled_back[2 * nest_nrolled_back] = mySubid;
		nest_rolled_back[2 * nest_nrolled_back + 1] = nest_last_subid;
		nest_nrolled_back++;
	}
}

/*
 * nest_xact_callback
 *		Before commit, nothing may be kept; at the end, forget everything
 *		(it lived in TopTransactionContext and under its resource owner).
 */
static void
nest_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (nest_frames != NULL)
				elog(ERROR, "events of nested statements were not written to the outbox");
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			nest_depth = 0;
			copy_depth = 0;
			/* FALLTHROUGH */
		default:
			nest_frames = NULL;
			nest_nframes = 0;
			nest_rolled_back = NULL;
			nest_nrolled_back = 0;
			nest_maxrolled_back = 0;
			nest_last_subid = InvalidSubTransactionId;
			break;
	}
}

/* ---------------------------------------------------------------------
 * Reading one event back (previews: webhook_render, b2mml_render)
 * ---------------------------------------------------------------------
 */

/*
 * mfgsync_outbox_read_event
 *		Event event_id as the senders read it, into *ev: its JSON members as
 *		JSON text, created_at as a JSON string.  SPI must be connected (in a
 *		transaction); the strings are in SPI's memory.  Raises no_data_found
 *		when the event is not in the outbox.
 */
void
mfgsync_outbox_read_event(int64 event_id, MfgEvent *ev)
{
	Datum		args[1] = {Int64GetDatum(event_id)};
	Oid			types[1] = {INT8OID};
	int			rc;

	rc = SPI_execute_with_args("SELECT o.message_type, o.action, o.key::text, o.data::text, "
							   "       o.old_data::text, to_json(o.created_at)::text "
							   "  FROM mfgsync.outbox o WHERE o.id = $1",
							   1, types, args, NULL, true, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading the outbox");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("event " INT64_FORMAT " is not in the outbox", event_id)));
	ev->id = event_id;
	ev->message_type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ev->action = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	ev->key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	ev->data = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	ev->old_data = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
	ev->time = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 6);
}
