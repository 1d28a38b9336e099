/*-------------------------------------------------------------------------
 *
 * sender.c
 *		  Sender workers: claim events, send them, record the outcome
 *
 * An endpoint's events are cut into "workers" shards by a hash of their
 * ordering key (message type and key, mfgsync.shard_of), so that one
 * endpoint can keep several senders busy; every event of a key is in the
 * same shard, so per-key order is a shard's own business.  Each shard has
 * its own position (a row of mfgsync.endpoint_state), its share of
 * mfgsync.retry and its share of the endpoint's concurrency; below, an
 * "endpoint" is one shard of one.  Sender i serves the shards whose
 * endpoint id plus shard number modulo mfgsync.max_workers is i, all from
 * one libcurl multi handle, so a slow or dead endpoint occupies only its
 * own requests.  For each endpoint the sender repeats three steps, and
 * holds no transaction or snapshot during the second:
 *
 *	 claim	 read a batch of events in a short transaction;
 *	 send	 up to "concurrency" requests at a time, one event per request
 *			 (or up to batch_size events per CloudEvents batch);
 *	 record  one transaction that advances the endpoint's position and
 *			 writes what failed.
 *
 * Where the events come from.  endpoint_state holds a position: every
 * event of a transaction visible in the snapshot "low" is settled.  The
 * sender opens a window by taking a new snapshot "high"; the window's
 * events are those of transactions visible in high but not in low, all
 * committed, and it walks them in id order (next_id) in chunks of ids, so
 * a claim costs the same however long the backlog.  For one key, id order
 * is commit order (src/outbox.c), so the window's order is the key's.
 * When the window is walked, high becomes low.  A crash before "record"
 * sends the batch again: at-least-once, receivers deduplicate on the id.
 *
 * Order per key across failures.  An event that fails for a reason of its
 * own (5xx, 408, 4xx) is parked in mfgsync.retry with its next attempt
 * time, and so is every later event of the same message type and key
 * (mfgsync.retry.ordering_key), in id order; only the oldest parked event
 * of a key is ever sent, and the next one follows once it is settled.
 * Other keys keep flowing.  The sender remembers which keys are parked in
 * a hash table of their hashes (a collision only parks an event that did
 * not need it).  Failures that concern the whole endpoint (no connection,
 * timeout, 429, 503) close the endpoint's gate instead: nothing is sent to
 * it until the back-off (or Retry-After) has passed, and then one request
 * at a time until one succeeds; the batch waits in memory meanwhile.
 *
 * An event whose attempts reach max_attempts (client_error_attempts for a
 * 4xx) goes to mfgsync.dead_letter; the next event of its key proceeds.
 * 410 Gone pauses the endpoint, all its shards.
 *
 * Re-cutting.  Changing "workers" (mfgsync.reshard_endpoint) starts every
 * new shard at the position all old shards had passed and bumps the
 * shards' generation; a sender still holding a shard of the old cut fails
 * its "record" on the generation, so its batch is sent again by the new
 * shards: events may be delivered twice, never lost.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/sender.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "b2mml.h"
#include "http.h"
#include "mfgsync.h"
#include "outbox.h"
#include "webhook.h"
#include "worker.h"

/* longest error text kept per failure */
#define ERROR_TEXT_MAX 300
/* redirects followed per request, when an endpoint allows them */
#define MAX_REDIRECTS 5
/* a claim reads ids in chunks of this many times the batch size */
#define CHUNK_FACTOR 4
/* positions that moved without events are written at most this often */
#define POSITION_FLUSH_MS 1000

typedef enum EventState
{
	EV_PENDING,					/* to be sent */
	EV_INFLIGHT,
	EV_DONE,					/* delivered */
	EV_PARKED,					/* to mfgsync.retry */
	EV_DEAD,					/* to mfgsync.dead_letter */
	EV_REJECTED					/* a B2MML receiver's ConfirmBOD said Rejected */
} EventState;

typedef struct BatchEvent
{
	MfgEvent	ev;
	char	   *ordering_key;
	uint64		key_hash;
	int			prev;			/* earlier event of the same key, or -1 */
	EventState	state;
	int			attempts;
	bool		from_retry;		/* a row of mfgsync.retry */
	TimestampTz next_attempt;	/* when parked */
	int			last_status;
	char	   *last_error;
	const char *dead_reason;	/* EV_DEAD: "exhausted" or "unrenderable" */
	char	   *body;			/* B2MML: the document, rendered at claim */
	int			body_len;
	char	   *description;	/* EV_REJECTED: the ConfirmBOD's Description */
	char	   *note;			/* ... and Note */
} BatchEvent;

/* one failed attempt, written by "record" */
typedef struct Failure
{
	int64		event_id;
	int			attempt;
	int			status;
	char	   *error;
	double		latency_ms;
} Failure;

typedef struct Endpoint
{
	int			id;
	int			shard;			/* which share of the endpoint's keys */
	int			shards;			/* of how many: the option "workers" */
	int			generation;		/* of the cut into shards */
	char	   *name;
	char	   *url;
	bool		paused;
	bool		seen;			/* still configured, at the last reload */
	Oid			owner;
	MemoryContext cxt;			/* configuration */
	MemoryContext batchcxt;		/* the current batch */

	/* options */
	MfgHttpOptions http;
	int			concurrency;
	int			batch_size;
	int			max_attempts;
	int			client_error_attempts;
	int			retry_initial_ms;
	int			retry_max_ms;
	bool		follow_redirects;
	MfgEnvelope envelope;
	bool		is_b2mml;		/* format "b2mml" */
	MfgB2mmlEndpoint *b2mml;	/* its settings and mappings */
	char	   *source;
	char	  **headers;
	int			nheaders;
	MfgSecret	secrets[2];
	int			nsecrets;
	char	   *types;			/* text[] literal of subscribed types */
	char	   *condition;		/* SQL over "event", or NULL: none */
	bool		has_filter;

	/* position */
	char	   *low;
	char	   *high;			/* NULL: no window open */
	int64		next_id;
	int64		last_id;
	bool		position_dirty;
	TimestampTz position_flushed;
	char	   *rec_low;		/* the position record_in_xact wrote */
	char	   *rec_high;
	int64		rec_next_id;
	int64		rec_last_id;

	/* the batch being sent */
	BatchEvent *batch;
	int			nbatch;
	bool		batch_is_retry;
	int64		scan_end;		/* the claim read the window up to here */
	int			in_flight;
	bool		halt;			/* paused or dropped: send nothing more */
	char	   *pause_reason;	/* set by a 410 */
	List	   *failures;

	/* scheduling */
	bool		maybe_more;		/* the outbox may have new events */
	TimestampTz gate_until;
	int			consecutive_failures;
	HTAB	   *parked;			/* key hash -> count */
	int64		nparked;
	TimestampTz next_retry_at;	/* 0: none */

	/* counters for the next "record" */
	int64		delivered;
	int64		failed;
	int64		dead;
	int			last_status;
	char	   *last_error;
	TimestampTz last_error_at;
	TimestampTz last_success_at;
} Endpoint;

typedef struct ParkedKey
{
	uint64		hash;
	int64		count;
} ParkedKey;

/* a request in flight: which endpoint, which events */
typedef struct InFlight
{
	Endpoint   *ep;
	int		   *events;
	int			nevents;
	int			redirects;
	char	   *url;
} InFlight;

PG_FUNCTION_INFO_V1(mfgsync_check_filter);

static int	sender_index;
static MemoryContext sender_cxt;
static MfgHttp *http;
static List *endpoints = NIL;
static uint32 config_generation_seen;
static bool config_loaded = false;
static uint32 launcher_generation_seen;
static TimestampTz extension_checked;

static void record_batch(Endpoint *ep);

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

static char *
truncated_text(const char *s, int len)
{
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	if (len > ERROR_TEXT_MAX)
		len = pg_mbcliplen(s, len, ERROR_TEXT_MAX);
	return pnstrdup(s, len);
}

/* exponential back-off with jitter: a random delay in [d/2, d] */
static long
backoff_ms(Endpoint *ep, int attempt)
{
	double		d = ep->retry_initial_ms * pow(2.0, Min(attempt - 1, 30));

	d = Min(d, (double) ep->retry_max_ms);
	return (long) (d / 2 + d / 2 * pg_prng_double(&pg_global_prng_state));
}

static uint64
key_hash(const char *ordering_key)
{
	return hash_bytes_extended((const unsigned char *) ordering_key,
							   strlen(ordering_key), 0);
}

static bool
key_is_parked(Endpoint *ep, uint64 hash)
{
	return ep->nparked > 0 &&
		hash_search(ep->parked, &hash, HASH_FIND, NULL) != NULL;
}

static void
park_key(Endpoint *ep, uint64 hash, int delta)
{
	bool		found;
	ParkedKey  *pk = hash_search(ep->parked, &hash, HASH_ENTER, &found);

	if (!found)
		pk->count = 0;
	pk->count += delta;
	ep->nparked += delta;
	if (pk->count <= 0)
		hash_search(ep->parked, &hash, HASH_REMOVE, NULL);
}

/*
 * After DROP EXTENSION every query fails; the sender then exits (code 0,
 * so it is not restarted) and the launcher starts senders again once the
 * extension is back.
 */
static void
exit_if_extension_dropped(void)
{
	if (!mfgsync_extension_exists())
	{
		ereport(LOG,
				(errmsg("mfgsync sender %d exiting: extension \"%s\" does not exist in database \"%s\"",
						sender_index, MFGSYNC_NAME, mfgsync_database)));
		proc_exit(0);
	}
}

/* run fn(ep) in a transaction with SPI; false (logged) on error */
static bool
in_transaction(void (*fn) (Endpoint *), Endpoint *ep, const char *activity)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		/* now() is the statement start: the time of this transaction */
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		fn(ep);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(sender_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("mfgsync: endpoint \"%s\": %s failed: %s",
						ep ? ep->name : "-", activity, edata->message)));
		if (ep)
		{
			ep->last_error = MemoryContextStrdup(ep->cxt, edata->message);
			ep->last_error_at = GetCurrentTimestamp();
		}
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	if (!ok)
		exit_if_extension_dropped();
	return ok;
}

static char *
getvalue(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static char *
copy_value(MemoryContext cxt, int row, int col)
{
	char	   *v = getvalue(row, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

static Datum
binval(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/* ---------------------------------------------------------------------
 * Configuration
 * ---------------------------------------------------------------------
 */

static Endpoint *
find_endpoint(int id, int shard, int generation)
{
	ListCell   *lc;

	foreach(lc, endpoints)
	{
		Endpoint   *ep = lfirst(lc);

		if (ep->id == id && ep->shard == shard && ep->generation == generation)
			return ep;
	}
	return NULL;
}

/*
 * Is ordering key "k" in shard s of n?  mfgsync.shard_of() is the one
 * definition; the planner inlines it (and folds n = 1 away).
 */
#define SHARD_CONDITION(k, n, s) \
	"(" n " = 1 OR mfgsync.shard_of(" k ", " n ") = " s ")"

/* the parked keys of ep, from mfgsync.retry */
static void
load_parked(Endpoint *ep)
{
	Datum		args[3] = {Int32GetDatum(ep->id), Int32GetDatum(ep->shards),
	Int32GetDatum(ep->shard)};
	Oid			types[3] = {INT4OID, INT4OID, INT4OID};
	HASHCTL		ctl;
	uint64		i;
	int			rc;

	if (ep->parked)
		hash_destroy(ep->parked);
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(ParkedKey);
	ctl.hcxt = ep->cxt;
	ep->parked = hash_create("mfgsync parked keys", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ep->nparked = 0;

	rc = SPI_execute_with_args("SELECT ordering_key, count(*) FROM mfgsync.retry "
							   "WHERE endpoint_id = $1 "
							   "  AND " SHARD_CONDITION("ordering_key", "$2", "$3")
							   " GROUP BY 1",
							   3, types, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading parked events");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		park_key(ep, key_hash(getvalue(i, 1)),
				 (int) DatumGetInt64(binval(i, 2, &isnull)));
	}

	rc = SPI_execute_with_args("SELECT min(next_attempt_at) FROM "
							   "(SELECT DISTINCT ON (ordering_key) next_attempt_at "
							   "FROM mfgsync.retry WHERE endpoint_id = $1 "
							   "  AND " SHARD_CONDITION("ordering_key", "$2", "$3")
							   " ORDER BY ordering_key, event_id) AS heads",
							   3, types, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading parked events");
	{
		bool		isnull;
		Datum		d = binval(0, 1, &isnull);

		ep->next_retry_at = isnull ? 0 : DatumGetTimestampTz(d);
	}
}

/*
 * lock_slot_in_xact
 *		Take this sender's slot lock, held for the life of the session.
 */
static void
lock_slot_in_xact(Endpoint *unused)
{
	int			rc;

	rc = SPI_execute(psprintf("SELECT pg_advisory_lock(hashtext('mfgsync sender'), %d)",
							  sender_index), false, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "locking the sender slot");
}

/* an endpoint's subscribed types (a text[] literal) and claim condition */
#define SUBSCRIPTION_COLUMNS \
"       (SELECT array_agg(sb.message_type)::text FROM mfgsync.subscription sb " \
"         WHERE sb.endpoint_id = e.id), " \
"       (SELECT string_agg(CASE WHEN sb.filter IS NULL " \
"                     THEN format('event.message_type = %L', sb.message_type) " \
"                     ELSE format('(event.message_type = %L AND (%s))', sb.message_type, sb.filter) END, " \
"                     ' OR ') FROM mfgsync.subscription sb WHERE sb.endpoint_id = e.id), " \
"       EXISTS (SELECT 1 FROM mfgsync.subscription sb " \
"                WHERE sb.endpoint_id = e.id AND sb.filter IS NOT NULL) "

/* store the subscription columns of row, starting at col */
static void
set_subscriptions(Endpoint *ep, int row, int col)
{
	bool		isnull;

	ep->types = copy_value(ep->cxt, row, col);
	ep->condition = copy_value(ep->cxt, row, col + 1);
	ep->has_filter = DatumGetBool(binval(row, col + 2, &isnull));
}

/*
 * read_subscriptions
 *		Re-read ep's subscriptions in the current snapshot.
 *
 * A window applies the subscriptions of its own snapshot: an event
 * committed after subscribe() is in a window that sees the subscription,
 * however late the change reaches this sender's configuration.
 */
static void
read_subscriptions(Endpoint *ep)
{
	Datum		args[1] = {Int32GetDatum(ep->id)};
	Oid			types[1] = {INT4OID};
	int			rc;

	rc = SPI_execute_with_args("SELECT " SUBSCRIPTION_COLUMNS
							   "FROM mfgsync.endpoint e WHERE e.id = $1",
							   1, types, args, NULL, true, 1);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading subscriptions");
	if (SPI_processed == 1)
		set_subscriptions(ep, 0, 1);
}

static const char *config_query =
"SELECT e.id, e.name, e.url, e.paused, e.owner::oid, st.low::text, st.high::text, "
"       st.next_id, st.last_id, "
"       (o->>'timeout_ms')::int, (o->>'connect_timeout_ms')::int, "
"       (o->>'max_response_bytes')::int, o->>'ca_file', "
"       (o->>'concurrency')::int, "
"       coalesce((o->>'batch_size')::int, current_setting('mfgsync.batch_size')::int), "
"       (o->>'max_attempts')::int, (o->>'client_error_attempts')::int, "
"       (o->>'retry_initial_ms')::int, (o->>'retry_max_ms')::int, "
"       (o->>'follow_redirects')::boolean, o->>'envelope', "
"       coalesce(o->>'source', 'urn:mfgsync:' || current_database()), "
"       ARRAY(SELECT h.key || ': ' || h.value FROM jsonb_each_text(o->'headers') h), "
"       s.secret, s.previous_secret, "
SUBSCRIPTION_COLUMNS
"       , e.format, st.shard, st.generation, (o->>'workers')::int "
"  FROM mfgsync.endpoint e "
"  JOIN mfgsync.endpoint_state st ON st.endpoint_id = e.id "
"  LEFT JOIN mfgsync.endpoint_secret s ON s.endpoint_id = e.id "
"  CROSS JOIN LATERAL mfgsync.endpoint_options(e.format, e.options) AS o "
" WHERE (e.id::bigint + st.shard) % $1 = $2 "
" ORDER BY e.id, st.shard";

static void
load_config_in_xact(Endpoint *unused)
{
	Datum		args[2] = {Int32GetDatum(mfgsync_shared->nsenders),
	Int32GetDatum(sender_index)};
	Oid			types[2] = {INT4OID, INT4OID};
	ListCell   *lc;
	List	   *reload = NIL;
	uint64		i;
	int			rc;

	rc = SPI_execute_with_args(config_query, 2, types, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "reading endpoints");

	foreach(lc, endpoints)
		((Endpoint *) lfirst(lc))->seen = false;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			id = DatumGetInt32(binval(i, 1, &isnull));
		int			shard = DatumGetInt32(binval(i, 30, &isnull));
		int			generation = DatumGetInt32(binval(i, 31, &isnull));
		Endpoint   *ep = find_endpoint(id, shard, generation);
		MemoryContext oldcxt;
		ArrayType  *arr;
		Datum	   *elems;
		int			nelems;
		int			j;
		char	   *secret;

		if (ep == NULL)
		{
			MemoryContext cxt = AllocSetContextCreate(sender_cxt, "mfgsync endpoint",
													  ALLOCSET_DEFAULT_SIZES);

			ep = MemoryContextAllocZero(cxt, sizeof(Endpoint));
			ep->cxt = cxt;
			ep->batchcxt = AllocSetContextCreate(cxt, "mfgsync batch",
												 ALLOCSET_DEFAULT_SIZES);
			ep->id = id;
			ep->shard = shard;
			ep->generation = generation;
			ep->shards = DatumGetInt32(binval(i, 32, &isnull));
			ep->maybe_more = true;
			/* the stored position is read once; from then on ours is newer */
			ep->low = MemoryContextStrdup(cxt, getvalue(i, 6));
			ep->high = copy_value(cxt, i, 7);
			ep->next_id = DatumGetInt64(binval(i, 8, &isnull));
			ep->last_id = DatumGetInt64(binval(i, 9, &isnull));
			ep->position_flushed = GetCurrentTimestamp();
			oldcxt = MemoryContextSwitchTo(sender_cxt);
			endpoints = lappend(endpoints, ep);
			MemoryContextSwitchTo(oldcxt);
		}
		ep->seen = true;

		/*
		 * The configuration lives in cxt and applies at once, also to a
		 * batch being sent (a new URL, a pause).  Replaced strings stay
		 * allocated: requests in flight may point to them.
		 */
		oldcxt = MemoryContextSwitchTo(ep->cxt);
		ep->name = pstrdup(getvalue(i, 2));
		ep->url = pstrdup(getvalue(i, 3));
		ep->paused = DatumGetBool(binval(i, 4, &isnull));
		ep->owner = DatumGetObjectId(binval(i, 5, &isnull));
		ep->http.timeout_ms = DatumGetInt32(binval(i, 10, &isnull));
		ep->http.connect_timeout_ms = DatumGetInt32(binval(i, 11, &isnull));
		ep->http.max_response_bytes = DatumGetInt32(binval(i, 12, &isnull));
		ep->http.ca_file = copy_value(ep->cxt, i, 13);
		/* "concurrency" is the endpoint's: its shards share it */
		ep->concurrency = Max(1, DatumGetInt32(binval(i, 14, &isnull)) / ep->shards);
		ep->batch_size = DatumGetInt32(binval(i, 15, &isnull));
		ep->max_attempts = DatumGetInt32(binval(i, 16, &isnull));
		ep->client_error_attempts = DatumGetInt32(binval(i, 17, &isnull));
		ep->retry_initial_ms = DatumGetInt32(binval(i, 18, &isnull));
		ep->retry_max_ms = DatumGetInt32(binval(i, 19, &isnull));
		ep->follow_redirects = DatumGetBool(binval(i, 20, &isnull));
		{
			char	   *env = getvalue(i, 21);

			ep->envelope = strcmp(env, "cloudevents") == 0 ? MFG_ENVELOPE_CLOUDEVENTS :
				strcmp(env, "cloudevents-batch") == 0 ? MFG_ENVELOPE_CLOUDEVENTS_BATCH :
				MFG_ENVELOPE_WEBHOOK;
		}
		ep->source = pstrdup(getvalue(i, 22));
		arr = DatumGetArrayTypeP(binval(i, 23, &isnull));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, NULL, &nelems);
		ep->headers = palloc(sizeof(char *) * (nelems + 1));
		for (j = 0; j < nelems; j++)
			ep->headers[j] = TextDatumGetCString(elems[j]);
		ep->nheaders = nelems;
		ep->nsecrets = 0;
		for (j = 24; j <= 25; j++)
		{
			secret = getvalue(i, j);
			if (secret != NULL &&
				mfgsync_webhook_decode_secret(secret, &ep->secrets[ep->nsecrets]))
				ep->nsecrets++;
		}
		set_subscriptions(ep, i, 26);
		/* a B2MML endpoint's mappings are read below */
		ep->is_b2mml = strcmp(getvalue(i, 29), "b2mml") == 0;
		MemoryContextSwitchTo(oldcxt);
		ep->maybe_more = true;
		reload = lappend(reload, ep);
	}

	/* replay() may have parked events (this replaces SPI_tuptable) */
	foreach(lc, reload)
	{
		Endpoint   *ep = lfirst(lc);

		ep->b2mml = ep->is_b2mml ? mfgsync_b2mml_load(ep->id, ep->cxt) : NULL;
		load_parked(ep);
	}
	list_free(reload);
}

/* (re)read this sender's endpoints; drop the ones that are gone */
static void
load_config(void)
{
	ListCell   *lc;

	config_generation_seen = pg_atomic_read_u32(&mfgsync_shared->config_generation);
	exit_if_extension_dropped();
	if (!in_transaction(load_config_in_xact, NULL, "reading endpoints"))
		return;
	config_loaded = true;
	/* commits wake this sender only while it serves endpoints */
	mfgsync_shared->sender[sender_index].has_endpoints = endpoints != NIL;
	pg_memory_barrier();

	foreach(lc, endpoints)
	{
		Endpoint   *ep = lfirst(lc);

		if (!ep->seen && ep->in_flight == 0)
		{
			endpoints = foreach_delete_current(endpoints, lc);
			MemoryContextDelete(ep->cxt);
		}
		else if (!ep->seen)
			ep->halt = true;
	}
}

/*
 * mfgsync_check_filter
 *		SQL function: a subscription filter must be exactly one expression.
 *
 * The claim query embeds the filter in parentheses; text such as
 * "true) OR (true" would otherwise widen it to every message type.
 */
Datum
mfgsync_check_filter(PG_FUNCTION_ARGS)
{
	char	   *filter = text_to_cstring(PG_GETARG_TEXT_PP(0));
	List	   *parsed = raw_parser(filter, RAW_PARSE_PLPGSQL_EXPR);
	SelectStmt *select = NULL;

	if (list_length(parsed) == 1)
		select = (SelectStmt *) linitial_node(RawStmt, parsed)->stmt;
	if (select == NULL || !IsA(select, SelectStmt) ||
		list_length(select->targetList) != 1 ||
		select->distinctClause || select->fromClause || select->whereClause ||
		select->groupClause || select->havingClause || select->windowClause ||
		select->sortClause || select->limitCount || select->limitOffset ||
		select->lockingClause)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("a subscription filter must be a single expression")));
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Claim
 * ---------------------------------------------------------------------
 */

static void
add_event(Endpoint *ep, int row, int first_col, bool from_retry,
		  HTAB *last_of_key)
{
	BatchEvent *e = &ep->batch[ep->nbatch];
	MemoryContext cxt = ep->batchcxt;
	bool		isnull;
	bool		found;
	struct
	{
		uint64		hash;
		int			index;
	}		   *last;

	e->ev.id = DatumGetInt64(binval(row, first_col, &isnull));
	e->ev.message_type = copy_value(cxt, row, first_col + 1);
	e->ev.action = copy_value(cxt, row, first_col + 2);
	e->ev.key = copy_value(cxt, row, first_col + 3);
	e->ev.data = copy_value(cxt, row, first_col + 4);
	e->ev.old_data = copy_value(cxt, row, first_col + 5);
	e->ev.time = copy_value(cxt, row, first_col + 6);
	e->ordering_key = copy_value(cxt, row, first_col + 7);
	e->key_hash = key_hash(e->ordering_key);
	e->state = EV_PENDING;
	e->from_retry = from_retry;
	e->prev = -1;
	if (from_retry)
		e->attempts = DatumGetInt32(binval(row, first_col + 8, &isnull));
	else
	{
		last = hash_search(last_of_key, &e->key_hash, HASH_ENTER, &found);
		if (found)
			e->prev = last->index;
		last->index = ep->nbatch;
	}
	ep->nbatch++;
}

#define EVENT_COLUMNS \
	"event.id, event.message_type, event.action, event.key_json, " \
	"event.data_json, event.old_data_json, to_json(event.created_at)::text, " \
	"event.message_type || ' ' || coalesce(event.key_json::text, '') "

/*
 * move_low
 *		Every event of a transaction visible in new_low is settled: it
 *		becomes the position, and no window is open.
 */
static void
move_low(Endpoint *ep, char *new_low)
{
	pfree(ep->low);
	ep->low = new_low;
	ep->high = NULL;
	ep->next_id = ep->last_id = 0;
	ep->position_dirty = true;
}

/* the window is open: read the next chunks of it into a batch */
static void
claim_stream(Endpoint *ep)
{
	/* enough for every request slot to be busy for a while */
	int			claim_size = ep->batch_size * ep->concurrency;
	Oid			types[7] = {INT8OID, INT8OID, TEXTOID, TEXTOID, INT4OID,
	INT4OID, INT4OID};
	StringInfoData sql;
	HASHCTL		ctl;
	HTAB	   *last_of_key;
	int64		cursor = ep->next_id;
	Oid			save_userid;
	int			save_sec_context;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT " EVENT_COLUMNS
					 "FROM (SELECT o.id, o.message_type, o.action, "
					 "             o.key::jsonb AS key, o.data::jsonb AS data, "
					 "             o.old_data::jsonb AS old_data, o.created_at, "
					 "             o.txid::text::xid8 AS txid, o.key AS key_json, "
					 "             o.data AS data_json, o.old_data AS old_data_json "
					 "        FROM mfgsync.outbox o "
					 "       WHERE o.id BETWEEN $1 AND $2 "
					 "         AND pg_visible_in_snapshot(o.txid::text::xid8, $4::pg_snapshot) "
					 "         AND NOT pg_visible_in_snapshot(o.txid::text::xid8, $3::pg_snapshot) "
					 "         AND " SHARD_CONDITION("o.message_type || ' ' || coalesce(o.key::text, '')", "$6", "$7")
					 ") AS event "
					 "WHERE %s ORDER BY event.id LIMIT $5",
					 ep->condition);

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64) + sizeof(int) * 2;
	ctl.hcxt = ep->batchcxt;
	last_of_key = hash_create("mfgsync batch keys", claim_size, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ep->batch = MemoryContextAllocZero(ep->batchcxt, sizeof(BatchEvent) * claim_size);
	ep->nbatch = 0;
	ep->batch_is_retry = false;
	ep->scan_end = ep->next_id - 1;

	/* a filter is the endpoint owner's SQL: run it with the owner's rights */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (ep->has_filter)
		SetUserIdAndSecContext(ep->owner,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);

	while (ep->nbatch < claim_size && cursor <= ep->last_id)
	{
		int64		chunk_end = Min(cursor + (int64) claim_size * CHUNK_FACTOR - 1,
									ep->last_id);
		int			want = claim_size - ep->nbatch;
		Datum		args[7];
		uint64		i;
		int			rc;

		args[0] = Int64GetDatum(cursor);
		args[1] = Int64GetDatum(chunk_end);
		args[2] = CStringGetTextDatum(ep->low);
		args[3] = CStringGetTextDatum(ep->high);
		args[4] = Int32GetDatum(want);
		args[5] = Int32GetDatum(ep->shards);
		args[6] = Int32GetDatum(ep->shard);
		rc = SPI_execute_with_args(sql.data, 7, types, args, NULL, true, 0);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "claiming events");
		for (i = 0; i < SPI_processed; i++)
			add_event(ep, i, 1, false, last_of_key);
		if (SPI_processed == (uint64) want)
			ep->scan_end = ep->batch[ep->nbatch - 1].ev.id;
		else
			ep->scan_end = chunk_end;
		cursor = ep->scan_end + 1;
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * render_batch
 *		A B2MML endpoint's documents are rendered while the claim's
 *		transaction is open (mappings, hooks and date-time input need one),
 *		each in a subtransaction: an event that cannot be rendered is
 *		dead-lettered as "unrenderable" with the error, and the others go.
 */
static void
render_one(Endpoint *ep, BatchEvent *e)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(ep->batchcxt);
	PG_TRY();
	{
		e->body = mfgsync_b2mml_render_event(ep->b2mml, &e->ev, &e->body_len);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(ep->batchcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		e->state = EV_DEAD;
		e->dead_reason = "unrenderable";
		e->last_error = MemoryContextStrdup(ep->batchcxt,
											truncated_text(edata->message, strlen(edata->message)));
		ep->dead++;
		ereport(LOG,
				(errmsg("mfgsync: endpoint \"%s\": event " INT64_FORMAT " cannot be rendered as B2MML: %s",
						ep->name, e->ev.id, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

static void
render_batch(Endpoint *ep)
{
	int			i;

	if (ep->b2mml == NULL)
		return;
	for (i = 0; i < ep->nbatch; i++)
		if (ep->batch[i].state == EV_PENDING)
			render_one(ep, &ep->batch[i]);
}

/* claim the next batch of the outbox, opening a window if needed */
static void
claim_in_xact(Endpoint *ep)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	bool		isnull;
	int			rc;

	MemoryContextReset(ep->batchcxt);
	ep->batch = NULL;
	ep->nbatch = 0;

	if (ep->high == NULL)
	{
		char	   *high;
		Datum		d;

		/*
		 * The sequence is read after the snapshot: the last id of its
		 * latest block bounds the ids drawn so far (src/outbox.c).
		 */
		rc = SPI_execute("SELECT pg_current_snapshot()::text, "
						 "(SELECT last_value + " CppAsString2(MFGSYNC_ID_BLOCK) " - 1 "
						 "   FROM mfgsync.event_id_seq)",
						 true, 1);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "opening a window");
		high = MemoryContextStrdup(ep->batchcxt, getvalue(0, 1));
		ep->last_id = DatumGetInt64(binval(0, 2, &isnull));
		read_subscriptions(ep);
		if (ep->types == NULL)
		{
			/* no subscriptions: nothing in the window is for us */
			move_low(ep, MemoryContextStrdup(ep->cxt, high));
			ep->maybe_more = false;
			return;
		}

		args[0] = CStringGetTextDatum(ep->low);
		args[1] = CStringGetTextDatum(high);
		/*
		 * The transactions not visible in low are those it saw running and
		 * those from its xmax on: two index scans of the xact_first events
		 * by txid (OR would need a bitmap scan, which senders do not use),
		 * so this costs the window's transactions, not the outbox's events.
		 * A transaction's smallest id is that of one of its xact_first
		 * events (sql/mfgsync--0.1.sql).  Every event of a subscribed type
		 * is at or above it; events of other types below the next one of
		 * ours are skipped by the walk.  (min(o.id) would be planned as a
		 * walk of the id index from the outbox's oldest event.)
		 */
		rc = SPI_execute_with_args("SELECT least("
								   " (SELECT min(o.id + 0) FROM mfgsync.outbox o "
								   "   WHERE o.xact_first "
								   "     AND o.txid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)::text::bigint)) "
								   "     AND pg_visible_in_snapshot(o.txid::text::xid8, $2::pg_snapshot)), "
								   " (SELECT min(o.id + 0) FROM mfgsync.outbox o "
								   "   WHERE o.xact_first "
								   "     AND o.txid >= pg_snapshot_xmax($1::pg_snapshot)::text::bigint "
								   "     AND o.txid < pg_snapshot_xmax($2::pg_snapshot)::text::bigint "
								   "     AND pg_visible_in_snapshot(o.txid::text::xid8, $2::pg_snapshot)))",
								   2, types, args, NULL, true, 1);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "opening a window");
		d = binval(0, 1, &isnull);
		if (isnull)
		{
			/* no event in the window: it is walked already */
			move_low(ep, MemoryContextStrdup(ep->cxt, high));
			ep->maybe_more = false;
			return;
		}
		ep->high = MemoryContextStrdup(ep->cxt, high);
		ep->next_id = DatumGetInt64(d);
		ep->position_dirty = true;
	}

	if (ep->condition != NULL)
		claim_stream(ep);
	render_batch(ep);
	if (ep->nbatch == 0)
	{
		/* the window is walked: its high becomes our low */
		move_low(ep, ep->high);
		ep->batch = NULL;
	}
}

/* the parked events whose turn it is: the oldest of each key, when due */
static void
claim_retry_in_xact(Endpoint *ep)
{
	Oid			types[4] = {INT4OID, INT4OID, INT4OID, INT4OID};
	Datum		args[4] = {Int32GetDatum(ep->id), Int32GetDatum(ep->batch_size),
	Int32GetDatum(ep->shards), Int32GetDatum(ep->shard)};
	uint64		i;
	int			rc;

	MemoryContextReset(ep->batchcxt);
	ep->batch = NULL;
	ep->nbatch = 0;

	rc = SPI_execute_with_args("SELECT o.id, o.message_type, o.action, o.key, o.data, "
							   "       o.old_data, to_json(o.created_at)::text, "
							   "       r.ordering_key, r.attempts, r.event_id "
							   "  FROM (SELECT DISTINCT ON (ordering_key) * FROM mfgsync.retry "
							   "         WHERE endpoint_id = $1 "
							   "           AND " SHARD_CONDITION("ordering_key", "$3", "$4")
							   "         ORDER BY ordering_key, event_id) AS r "
							   "  LEFT JOIN mfgsync.outbox o ON o.id = r.event_id "
							   " WHERE r.next_attempt_at <= now() "
							   " ORDER BY r.event_id LIMIT $2",
							   4, types, args, NULL, true, 0);
	mfgsync_check_spi(rc, SPI_OK_SELECT, "claiming parked events");
	if (SPI_processed == 0)
	{
		/* none due yet: when is the next? */
		load_parked(ep);
		return;
	}
	ep->batch = MemoryContextAllocZero(ep->batchcxt, sizeof(BatchEvent) * SPI_processed);
	ep->batch_is_retry = true;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		(void) binval(i, 1, &isnull);
		if (isnull)
		{
			/* retired or deleted from the outbox: nothing left to send */
			BatchEvent *e = &ep->batch[ep->nbatch++];

			e->ev.id = DatumGetInt64(binval(i, 10, &isnull));
			e->ordering_key = copy_value(ep->batchcxt, i, 8);
			e->key_hash = key_hash(e->ordering_key);
			e->from_retry = true;
			e->attempts = DatumGetInt32(binval(i, 9, &isnull));
			e->state = EV_DEAD;
			e->last_error = MemoryContextStrdup(ep->batchcxt,
												"event is no longer in the outbox");
			continue;
		}
		add_event(ep, i, 1, true, NULL);
	}
	render_batch(ep);
}

/* ---------------------------------------------------------------------
 * Send
 * ---------------------------------------------------------------------
 */

static bool
event_may_go(Endpoint *ep, BatchEvent *e, int *in_request, int nin_request)
{
	int			k;

	if (e->state != EV_PENDING)
		return false;
	if (ep->batch_is_retry || e->prev < 0)
		return true;
	switch (ep->batch[e->prev].state)
	{
		case EV_DONE:
		case EV_DEAD:
		case EV_REJECTED:
			return true;
		case EV_PENDING:
			/* in the same request, after it, is fine */
			for (k = 0; k < nin_request; k++)
				if (in_request[k] == e->prev)
					return true;
			return false;
		default:
			return false;
	}
}

static void
start_request(Endpoint *ep, InFlight *fl, const char *url)
{
	MfgHttpRequest *req = mfgsync_http_post_request(http, url, &ep->http);
	char		msg_id[64];
	char		line[256];
	int64		now = (int64) time(NULL);
	int			k;

	req->owner = fl;
	if (ep->envelope == MFG_ENVELOPE_CLOUDEVENTS_BATCH)
	{
		appendStringInfoChar(&req->body, '[');
		for (k = 0; k < fl->nevents; k++)
		{
			if (k > 0)
				appendStringInfoChar(&req->body, ',');
			mfgsync_webhook_append(&req->body, ep->envelope,
								   &ep->batch[fl->events[k]].ev, ep->source);
		}
		appendStringInfoChar(&req->body, ']');
		snprintf(msg_id, sizeof(msg_id), "batch_" INT64_FORMAT "_%d",
				 ep->batch[fl->events[0]].ev.id, fl->nevents);
	}
	else
	{
		BatchEvent *e = &ep->batch[fl->events[0]];

		if (ep->b2mml != NULL)
			appendBinaryStringInfo(&req->body, e->body, e->body_len);
		else
			mfgsync_webhook_append(&req->body, ep->envelope, &e->ev, ep->source);
		snprintf(msg_id, sizeof(msg_id), INT64_FORMAT, e->ev.id);
	}

	snprintf(line, sizeof(line), "Content-Type: %s",
			 ep->b2mml != NULL ? mfgsync_b2mml_content_type(ep->b2mml) :
			 mfgsync_webhook_content_type(ep->envelope));
	req->headers = curl_slist_append(req->headers, line);
	req->headers = curl_slist_append(req->headers, "Expect:");
	for (k = 0; k < ep->nheaders; k++)
		req->headers = curl_slist_append(req->headers, ep->headers[k]);
	snprintf(line, sizeof(line), "webhook-id: %s", msg_id);
	req->headers = curl_slist_append(req->headers, line);
	snprintf(line, sizeof(line), "webhook-timestamp: " INT64_FORMAT, now);
	req->headers = curl_slist_append(req->headers, line);
	if (ep->nsecrets > 0)
	{
		char	   *sig = mfgsync_webhook_signature(ep->secrets, ep->nsecrets,
													msg_id, now,
													req->body.data, req->body.len);
		char	   *hdr = psprintf("webhook-signature: %s", sig);

		req->headers = curl_slist_append(req->headers, hdr);
		pfree(hdr);
		pfree(sig);
	}
	mfgsync_http_start(http, req);
	ep->in_flight++;
}

/* send what may go now, up to the endpoint's concurrency */
static void
dispatch(Endpoint *ep)
{
	int			limit = ep->consecutive_failures > 0 ? 1 : ep->concurrency;
	int			per_request = ep->envelope == MFG_ENVELOPE_CLOUDEVENTS_BATCH ?
		ep->batch_size : 1;
	int			i;

	if (ep->batch == NULL || ep->halt || ep->paused ||
		GetCurrentTimestamp() < ep->gate_until)
		return;

	for (i = 0; i < ep->nbatch && ep->in_flight < limit; i++)
	{
		BatchEvent *e = &ep->batch[i];
		InFlight   *fl;
		int			j;

		if (e->state != EV_PENDING)
			continue;
		if (!ep->batch_is_retry && key_is_parked(ep, e->key_hash))
		{
			/* wait behind the parked events of its key (also its "prev") */
			e->state = EV_PARKED;
			e->attempts = 0;
			e->next_attempt = GetCurrentTimestamp();
			park_key(ep, e->key_hash, 1);
			continue;
		}
		if (!event_may_go(ep, e, NULL, 0))
			continue;

		fl = MemoryContextAllocZero(ep->batchcxt, sizeof(InFlight));
		fl->ep = ep;
		fl->url = ep->url;
		fl->events = MemoryContextAlloc(ep->batchcxt, sizeof(int) * per_request);
		fl->events[fl->nevents++] = i;
		e->state = EV_INFLIGHT;
		for (j = i + 1; j < ep->nbatch && fl->nevents < per_request; j++)
		{
			BatchEvent *f = &ep->batch[j];

			if (event_may_go(ep, f, fl->events, fl->nevents) &&
				!key_is_parked(ep, f->key_hash))
			{
				/* not yet in flight: a later event may still follow it */
				fl->events[fl->nevents++] = j;
			}
		}
		for (j = 0; j < fl->nevents; j++)
			ep->batch[fl->events[j]].state = EV_INFLIGHT;
		start_request(ep, fl, fl->url);
	}
}

/* ---------------------------------------------------------------------
 * Outcomes
 * ---------------------------------------------------------------------
 */

static void
note_failure(Endpoint *ep, BatchEvent *e, MfgHttpRequest *req, const char *error)
{
	Failure    *f = MemoryContextAllocZero(ep->batchcxt, sizeof(Failure));
	MemoryContext oldcxt = MemoryContextSwitchTo(ep->batchcxt);

	f->event_id = e->ev.id;
	f->attempt = e->attempts;
	f->status = (int) req->status;
	f->error = pstrdup(error);
	f->latency_ms = req->latency_ms;
	ep->failures = lappend(ep->failures, f);
	MemoryContextSwitchTo(oldcxt);

	e->last_status = (int) req->status;
	e->last_error = f->error;
	ep->failed++;
	ep->last_status = (int) req->status;
	ep->last_error = MemoryContextStrdup(ep->cxt, error);
	ep->last_error_at = GetCurrentTimestamp();
}

/* a B2MML receiver rejected the events of fl: dead letters, with why */
static void
reject(Endpoint *ep, InFlight *fl, MfgHttpRequest *req, MfgB2mmlConfirm *c)
{
	char	   *t = psprintf("rejected by the receiver%s%s",
								 c->description ? ": " : "",
								 c->description ? c->description : "");
	char	   *error = MemoryContextStrdup(ep->batchcxt, truncated_text(t, strlen(t)));
	int			k;

	ep->consecutive_failures = 0;
	for (k = 0; k < fl->nevents; k++)
	{
		BatchEvent *e = &ep->batch[fl->events[k]];

		e->state = EV_REJECTED;
		e->attempts++;
		e->last_status = (int) req->status;
		e->last_error = error;
		e->description = c->description;
		e->note = c->note;
		ep->dead++;
		ereport(LOG,
				(errmsg("mfgsync: endpoint \"%s\": event " INT64_FORMAT " %s",
						ep->name, e->ev.id, error)));
	}
	ep->last_status = (int) req->status;
	ep->last_error = MemoryContextStrdup(ep->cxt, error);
	ep->last_error_at = GetCurrentTimestamp();
	mfgsync_http_free(http, req);
}

/* a request finished: settle its events */
static void
complete(MfgHttpRequest *req)
{
	InFlight   *fl = (InFlight *) req->owner;
	Endpoint   *ep = fl->ep;
	long		status = req->status;
	bool		success = status >= 200 && status < 300;
	bool		endpoint_wide;
	char	   *error = NULL;
	char	   *b2mml_error = NULL;
	bool		rejected = false;
	int			k;

	ep->in_flight--;

	/* a redirect to the same host is followed when the endpoint says so */
	if (status >= 300 && status < 400 && req->redirect_url != NULL &&
		ep->follow_redirects && !ep->halt && fl->redirects < MAX_REDIRECTS &&
		mfgsync_http_same_origin(ep->url, req->redirect_url))
	{
		fl->redirects++;
		fl->url = MemoryContextStrdup(ep->batchcxt, req->redirect_url);
		mfgsync_http_free(http, req);
		start_request(ep, fl, fl->url);
		return;
	}

	/*
	 * B2MML: the reply's ConfirmBOD decides.  Rejected settles the events
	 * (unless the endpoint retries rejections); a 2xx without a readable
	 * ConfirmBOD fails when ConfirmationCode is Always.
	 */
	if (ep->b2mml != NULL && (success || status >= 400))
	{
		MfgB2mmlConfirm c;
		MemoryContext oldcxt = MemoryContextSwitchTo(ep->batchcxt);

		mfgsync_b2mml_read_reply(req->response.data, req->response.len, &c);
		MemoryContextSwitchTo(oldcxt);
		if (c.verdict == MFG_B2MML_REJECTED && !mfgsync_b2mml_retry_rejected(ep->b2mml))
		{
			reject(ep, fl, req, &c);
			return;
		}
		if (c.verdict == MFG_B2MML_REJECTED)
		{
			rejected = true;
			success = false;
			b2mml_error = psprintf("rejected by the receiver%s%s",
								   c.description ? ": " : "",
								   c.description ? c.description : "");
		}
		else if (success && c.verdict == MFG_B2MML_NO_CONFIRM &&
				 mfgsync_b2mml_confirm_required(ep->b2mml))
		{
			success = false;
			b2mml_error = req->truncated ?
				psprintf("%s; the reply was cut at max_response_bytes", c.error) : c.error;
		}
	}

	if (success)
	{
		ep->consecutive_failures = 0;
		ep->last_success_at = GetCurrentTimestamp();
		for (k = 0; k < fl->nevents; k++)
		{
			ep->batch[fl->events[k]].state = EV_DONE;
			ep->delivered++;
		}
		mfgsync_http_free(http, req);
		return;
	}

	/* what went wrong, in one line without secrets */
	if (b2mml_error != NULL)
	{
		char	   *t = psprintf("HTTP %ld: %s", status, b2mml_error);

		error = truncated_text(t, strlen(t));
	}
	else if (status == 0)
		error = psprintf("%s", req->error);
	else if (status >= 300 && status < 400)
		error = psprintf("HTTP %ld: redirect%s%s not followed", status,
						 req->redirect_url ? " to " : "",
						 req->redirect_url ? req->redirect_url : "");
	else
	{
		char	   *body = truncated_text(req->response.data, req->response.len);

		error = psprintf("HTTP %ld%s%s", status, body[0] ? ": " : "", body);
		pfree(body);
	}

	endpoint_wide = status == 0 || status == 429 || status == 503;
	if (endpoint_wide)
	{
		long		delay;

		ep->consecutive_failures++;
		delay = req->retry_after_s >= 0 ? req->retry_after_s * 1000L :
			backoff_ms(ep, ep->consecutive_failures);
		ep->gate_until = Max(ep->gate_until,
							 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay));
		if (ep->consecutive_failures == 1)
			ereport(LOG,
					(errmsg("mfgsync: endpoint \"%s\" unavailable, retrying in %ld ms: %s",
							ep->name, delay, error)));
	}
	if (status == 410)
	{
		ep->halt = true;
		ep->pause_reason = MemoryContextStrdup(ep->cxt,
											   "receiver answered 410 Gone");
		ereport(LOG,
				(errmsg("mfgsync: endpoint \"%s\" paused: the receiver answered 410 Gone",
						ep->name)));
	}

	for (k = 0; k < fl->nevents; k++)
	{
		BatchEvent *e = &ep->batch[fl->events[k]];
		int			limit = rejected || (status >= 300 && status < 500 && status != 408 &&
										 status != 429) ? ep->client_error_attempts :
			ep->max_attempts;

		if (status == 410)
		{
			/* first in line when the endpoint is resumed */
			e->state = EV_PARKED;
			e->next_attempt = GetCurrentTimestamp();
			if (!e->from_retry)
				park_key(ep, e->key_hash, 1);
			note_failure(ep, e, req, error);
			continue;
		}
		e->attempts++;
		note_failure(ep, e, req, error);
		if (e->attempts >= limit)
		{
			e->state = EV_DEAD;
			ep->dead++;
			ereport(LOG,
					(errmsg("mfgsync: endpoint \"%s\": event " INT64_FORMAT " dead-lettered after %d attempts: %s",
							ep->name, e->ev.id, e->attempts, error)));
		}
		else if (endpoint_wide)
			e->state = EV_PENDING;	/* waits in the batch for the gate */
		else
		{
			long		delay = backoff_ms(ep, e->attempts);

			if (req->retry_after_s >= 0)
				delay = Max(delay, req->retry_after_s * 1000L);
			e->state = EV_PARKED;
			e->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
			if (!e->from_retry)
				park_key(ep, e->key_hash, 1);
		}
	}
	pfree(error);
	mfgsync_http_free(http, req);
}

/* ---------------------------------------------------------------------
 * Record
 * ---------------------------------------------------------------------
 */

static void
exec_args(const char *sql, int nargs, Oid *types, Datum *args,
		  const char *nulls, int expected)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, args, nulls,
										   false, 0);

	mfgsync_check_spi(rc, expected, "recording deliveries");
}

static Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

static void
record_in_xact(Endpoint *ep)
{
	ListCell   *lc;
	int			i;
	StringInfoData done;
	bool		window_walked;

	initStringInfo(&done);
	appendStringInfoChar(&done, '{');

	for (i = 0; i < ep->nbatch; i++)
	{
		BatchEvent *e = &ep->batch[i];
		Datum		args[7];
		char		nulls[7] = "       ";
		Oid			types[7] = {INT4OID, INT8OID, TEXTOID, INT4OID,
		TIMESTAMPTZOID, INT4OID, TEXTOID};

		/* a halted batch parks what it did not send */
		if (e->state == EV_PENDING || e->state == EV_INFLIGHT)
		{
			e->state = EV_PARKED;
			e->next_attempt = GetCurrentTimestamp();
			if (!e->from_retry)
				park_key(ep, e->key_hash, 1);
		}

		args[0] = Int32GetDatum(ep->id);
		args[1] = Int64GetDatum(e->ev.id);
		switch (e->state)
		{
			case EV_DONE:
				if (e->from_retry)
				{
					if (done.len > 1)
						appendStringInfoChar(&done, ',');
					appendStringInfo(&done, INT64_FORMAT, e->ev.id);
				}
				break;
			case EV_PARKED:
				args[2] = CStringGetTextDatum(e->ordering_key);
				args[3] = Int32GetDatum(e->attempts);
				args[4] = TimestampTzGetDatum(e->next_attempt);
				args[5] = Int32GetDatum(e->last_status);
				nulls[5] = e->last_status ? ' ' : 'n';
				args[6] = text_or_null(e->last_error, &nulls[6]);
				exec_args("INSERT INTO mfgsync.retry AS r (endpoint_id, event_id, "
						  "ordering_key, attempts, next_attempt_at, last_status, last_error) "
						  "VALUES ($1, $2, $3, $4, $5, $6, $7) "
						  "ON CONFLICT (endpoint_id, event_id) DO UPDATE "
						  "SET attempts = EXCLUDED.attempts, "
						  "    next_attempt_at = EXCLUDED.next_attempt_at, "
						  "    last_status = coalesce(EXCLUDED.last_status, r.last_status), "
						  "    last_error = coalesce(EXCLUDED.last_error, r.last_error)",
						  7, types, args, nulls, SPI_OK_INSERT);
				if (ep->next_retry_at == 0 || e->next_attempt < ep->next_retry_at)
					ep->next_retry_at = e->next_attempt;
				break;
			case EV_DEAD:
			case EV_REJECTED:
				args[2] = Int32GetDatum(e->attempts);
				args[3] = Int32GetDatum(e->last_status);
				nulls[3] = e->last_status ? ' ' : 'n';
				args[4] = text_or_null(e->last_error, &nulls[4]);
				args[5] = CStringGetTextDatum(e->state == EV_REJECTED ? "rejected" :
											  e->dead_reason ? e->dead_reason : "exhausted");
				args[6] = text_or_null(e->description, &nulls[6]);
				{
					Oid			dtypes[8] = {INT4OID, INT8OID, INT4OID, INT4OID, TEXTOID,
					TEXTOID, TEXTOID, TEXTOID};
					Datum		dargs[8];
					char		dnulls[8];

					memcpy(dargs, args, sizeof(Datum) * 7);
					memcpy(dnulls, nulls, 7);
					dargs[7] = text_or_null(e->note, &dnulls[7]);
					exec_args("INSERT INTO mfgsync.dead_letter (endpoint_id, event_id, "
							  "attempts, last_status, last_error, reason, description, note) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
							  "ON CONFLICT (endpoint_id, event_id) DO UPDATE "
							  "SET attempts = EXCLUDED.attempts, last_status = EXCLUDED.last_status, "
							  "    last_error = EXCLUDED.last_error, reason = EXCLUDED.reason, "
							  "    description = EXCLUDED.description, note = EXCLUDED.note, "
							  "    dead_at = now()",
							  8, dtypes, dargs, dnulls, SPI_OK_INSERT);
				}
				if (e->from_retry)
				{
					if (done.len > 1)
						appendStringInfoChar(&done, ',');
					appendStringInfo(&done, INT64_FORMAT, e->ev.id);
				}
				break;
			default:
				break;
		}
	}
	appendStringInfoChar(&done, '}');

	if (done.len > 2)
	{
		Oid			types[2] = {INT4OID, TEXTOID};
		Datum		args[2] = {Int32GetDatum(ep->id), CStringGetTextDatum(done.data)};

		exec_args("DELETE FROM mfgsync.retry WHERE endpoint_id = $1 "
				  "AND event_id = ANY ($2::bigint[])",
				  2, types, args, NULL, SPI_OK_DELETE);
	}

	foreach(lc, ep->failures)
	{
		Failure    *f = lfirst(lc);
		Oid			types[6] = {INT4OID, INT8OID, INT4OID, INT4OID, TEXTOID, FLOAT4OID};
		Datum		args[6];
		char		nulls[6] = "      ";

		args[0] = Int32GetDatum(ep->id);
		args[1] = Int64GetDatum(f->event_id);
		args[2] = Int32GetDatum(f->attempt);
		args[3] = Int32GetDatum(f->status);
		nulls[3] = f->status ? ' ' : 'n';
		args[4] = CStringGetTextDatum(f->error);
		args[5] = Float4GetDatum((float4) f->latency_ms);
		exec_args("INSERT INTO mfgsync.failure (endpoint_id, event_id, attempt, "
				  "status, error, latency_ms) VALUES ($1, $2, $3, $4, $5, $6)",
				  6, types, args, nulls, SPI_OK_INSERT);
	}

	/*
	 * The position moves past everything the stream batch settled.  It is
	 * applied in memory only once this transaction has committed
	 * (apply_recorded_position): if it fails, the batch is claimed again.
	 */
	ep->rec_low = ep->low;
	ep->rec_high = ep->high;
	ep->rec_next_id = ep->next_id;
	ep->rec_last_id = ep->last_id;
	if (ep->batch != NULL && !ep->batch_is_retry)
	{
		ep->rec_next_id = ep->scan_end + 1;
		window_walked = ep->rec_next_id > ep->last_id;
		if (window_walked)
		{
			ep->rec_low = ep->high;
			ep->rec_high = NULL;
			ep->rec_next_id = ep->rec_last_id = 0;
		}
	}

	{
		Oid			types[15] = {INT4OID, TEXTOID, TEXTOID, INT8OID, INT8OID,
			INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, INT4OID, TEXTOID,
		TIMESTAMPTZOID, TEXTOID, INT4OID, INT4OID};
		Datum		args[15];
		char		nulls[15] = "               ";
		bool		isnull;
		int			rc;

		args[0] = Int32GetDatum(ep->id);
		args[1] = CStringGetTextDatum(ep->rec_low);
		args[2] = text_or_null(ep->rec_high, &nulls[2]);
		args[3] = Int64GetDatum(ep->rec_next_id);
		args[4] = Int64GetDatum(ep->rec_last_id);
		args[5] = Int64GetDatum(ep->delivered);
		args[6] = Int64GetDatum(ep->failed);
		args[7] = Int64GetDatum(ep->dead);
		args[8] = TimestampTzGetDatum(ep->last_success_at);
		nulls[8] = ep->last_success_at ? ' ' : 'n';
		args[9] = Int32GetDatum(ep->last_status);
		nulls[9] = ep->last_error_at ? ' ' : 'n';
		args[10] = text_or_null(ep->last_error_at ? ep->last_error : NULL, &nulls[10]);
		args[11] = TimestampTzGetDatum(ep->last_error_at);
		nulls[11] = ep->last_error_at ? ' ' : 'n';
		args[12] = text_or_null(ep->pause_reason, &nulls[12]);
		args[13] = Int32GetDatum(ep->shard);
		args[14] = Int32GetDatum(ep->generation);
		rc = SPI_execute_with_args("WITH s AS ("
								   " UPDATE mfgsync.endpoint_state SET "
								   "  low = $2::pg_snapshot, high = $3::pg_snapshot, "
								   "  next_id = $4, last_id = $5, "
								   "  delivered = delivered + $6, failed = failed + $7, "
								   "  dead = dead + $8, "
								   "  last_success_at = coalesce($9, last_success_at), "
								   "  last_status = coalesce($10, last_status), "
								   "  last_error = coalesce($11, last_error), "
								   "  last_error_at = coalesce($12, last_error_at) "
								   " WHERE endpoint_id = $1 AND shard = $14 "
								   "   AND generation = $15 RETURNING 1), "
								   "p AS (UPDATE mfgsync.endpoint SET paused = true, "
								   "  paused_reason = $13 "
								   " WHERE id = $1 AND $13 IS NOT NULL AND EXISTS (SELECT FROM s)) "
								   "SELECT count(*) FROM s",
								   15, types, args, nulls, false, 0);
		mfgsync_check_spi(rc, SPI_OK_SELECT, "recording deliveries");
		/* re-cut into shards meanwhile: this batch is sent again */
		if (DatumGetInt64(binval(0, 1, &isnull)) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("endpoint \"%s\" was split into shards anew, or dropped",
							ep->name)));
		/* a pause reaches the endpoint's other shards */
		if (ep->pause_reason != NULL && ep->shards > 1)
			mfgsync_notify_on_commit();
	}

	/* settled parked events no longer hold their keys: re-read them here */
	if (ep->batch != NULL && ep->batch_is_retry)
		load_parked(ep);
}

/* the position written by a committed record_in_xact */
static void
apply_recorded_position(Endpoint *ep)
{
	if (ep->rec_low != ep->low)
		move_low(ep, ep->rec_low);
	ep->high = ep->rec_high;
	ep->next_id = ep->rec_next_id;
	ep->last_id = ep->rec_last_id;
	ep->position_dirty = false;
	ep->position_flushed = GetCurrentTimestamp();
}

/* write the batch's outcome and forget the batch */
static void
record_batch(Endpoint *ep)
{
	bool		ok;
	ListCell   *lc;

	ok = in_transaction(record_in_xact, ep, "recording deliveries");
	if (ok)
	{
		apply_recorded_position(ep);
		ep->delivered = ep->failed = ep->dead = 0;
		ep->last_success_at = 0;
		ep->last_error_at = 0;
		if (ep->pause_reason)
		{
			ep->paused = true;
			ep->pause_reason = NULL;
		}
	}
	else
	{
		/*
		 * Nothing was recorded: the stream batch is claimed and sent again
		 * (at-least-once); parked keys are re-read from the table.
		 */
		ep->delivered = ep->failed = ep->dead = 0;
		ep->gate_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 backoff_ms(ep, 1));
		(void) in_transaction(load_parked, ep, "reading parked events");
	}
	foreach(lc, ep->failures)
		pfree(lfirst(lc));
	list_free(ep->failures);
	ep->failures = NIL;
	ep->batch = NULL;
	ep->nbatch = 0;
	ep->halt = false;
	MemoryContextReset(ep->batchcxt);
	ep->maybe_more = true;
}

/* is every event of the batch settled, or is the batch halted and idle? */
static bool
batch_finished(Endpoint *ep)
{
	int			i;

	if (ep->in_flight > 0)
		return false;
	if (ep->halt || ep->paused)
		return true;
	for (i = 0; i < ep->nbatch; i++)
		if (ep->batch[i].state == EV_PENDING || ep->batch[i].state == EV_INFLIGHT)
			return false;
	return true;
}

/* ---------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------
 */

/* move ep one step; returns the time it next needs attention, or 0 */
static TimestampTz
drive(Endpoint *ep, TimestampTz now)
{
	if (!ep->seen)
		return 0;				/* dropped: removed once nothing is in flight */
	if (ep->batch != NULL)
	{
		dispatch(ep);
		if (batch_finished(ep))
			record_batch(ep);
		else
			return ep->gate_until > now ? ep->gate_until : 0;
	}
	if (ep->paused)
		return 0;
	if (now < ep->gate_until)
		return ep->gate_until;

	if (ep->nparked > 0 && ep->next_retry_at != 0 && ep->next_retry_at <= now)
	{
		char	   *activity = psprintf("claiming parked events for %s", ep->name);

		in_transaction(claim_retry_in_xact, ep, activity);
		pfree(activity);
	}
	if (ep->batch == NULL && ep->maybe_more)
	{
		char	   *activity = psprintf("claiming events for %s", ep->name);

		if (!in_transaction(claim_in_xact, ep, activity))
		{
			ep->batch = NULL;
			ep->gate_until = TimestampTzPlusMilliseconds(now, backoff_ms(ep, 1));
		}
		pfree(activity);
	}
	if (ep->batch != NULL)
	{
		char	   *activity = psprintf("sending %d events to %s", ep->nbatch, ep->name);

		pgstat_report_activity(STATE_RUNNING, activity);
		pfree(activity);
		dispatch(ep);
		if (batch_finished(ep))
		{
			record_batch(ep);
			return now;
		}
		return 0;
	}

	if (ep->position_dirty)
	{
		TimestampTz due = TimestampTzPlusMilliseconds(ep->position_flushed,
													  POSITION_FLUSH_MS);

		if (due > now)
			return due;
		/* position only, when it moved without events */
		if (in_transaction(record_in_xact, ep, "recording position"))
		{
			apply_recorded_position(ep);
			ep->delivered = ep->failed = ep->dead = 0;
			ep->last_success_at = ep->last_error_at = 0;
		}
	}
	if (ep->nparked > 0 && ep->next_retry_at != 0)
		return ep->next_retry_at;
	return 0;
}

void
mfgsync_sender_main(Datum main_arg)
{
	sender_index = DatumGetInt32(main_arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(mfgsync_database, NULL, 0);
	pgstat_report_appname(psprintf("mfgsync sender %d", sender_index));

	/* a lost "record" only means a redelivery, so commits need not wait */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * Claims read a range of ids: never by scanning the whole outbox, and
	 * in id order from the index, so that LIMIT stops the scan (a bitmap
	 * scan reads the whole range and sorts it: 10-20% of the sender's CPU)
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("enable_bitmapscan", "off", PGC_SUSET, PGC_S_OVERRIDE);

	sender_cxt = AllocSetContextCreate(TopMemoryContext, "mfgsync sender",
									   ALLOCSET_DEFAULT_SIZES);

	/*
	 * One sender per slot: a sender of an earlier launcher may still run
	 * (it exits when it sees the new launcher_generation); wait for it.
	 */
	launcher_generation_seen = pg_atomic_read_u32(&mfgsync_shared->launcher_generation);
	if (!in_transaction(lock_slot_in_xact, NULL, "waiting for the sender slot"))
		ereport(FATAL,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("mfgsync sender %d could not lock its slot", sender_index)));
	http = mfgsync_http_create(sender_cxt);
	mfgsync_shared->sender[sender_index].latch = MyLatch;

	extension_checked = GetCurrentTimestamp();
	for (;;)
	{
		TimestampTz now;
		TimestampTz next = 0;
		long		wait_ms;
		bool		woken;
		ListCell   *lc;
		MfgHttpRequest *req;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			config_loaded = false;
		}
		if (pg_atomic_read_u32(&mfgsync_shared->launcher_generation) != launcher_generation_seen)
		{
			ereport(LOG,
					(errmsg("mfgsync sender %d exiting: a new launcher started",
							sender_index)));
			proc_exit(0);
		}
		if (!config_loaded ||
			pg_atomic_read_u32(&mfgsync_shared->config_generation) != config_generation_seen)
			load_config();

		now = GetCurrentTimestamp();
		/* an idle sender notices DROP EXTENSION with the fallback timer */
		if (TimestampDifferenceExceeds(extension_checked, now, mfgsync_poll_interval))
		{
			exit_if_extension_dropped();
			extension_checked = now;
		}
		foreach(lc, endpoints)
		{
			Endpoint   *ep = lfirst(lc);
			TimestampTz t;

			if (!ep->seen && ep->in_flight == 0)
			{
				/* dropped; its events and rows went with it */
				endpoints = foreach_delete_current(endpoints, lc);
				MemoryContextDelete(ep->cxt);
				continue;
			}
			t = drive(ep, now);
			if (t != 0 && (next == 0 || t < next))
				next = t;
		}

		/* wait for sockets, a commit, or the next thing due */
		wait_ms = mfgsync_poll_interval;
		if (next != 0)
			wait_ms = Min(wait_ms, Max(0, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next)));
		woken = mfgsync_http_wait(http, wait_ms);
		while ((req = mfgsync_http_next_done(http)) != NULL)
			complete(req);

		/*
		 * A commit sets the latch; the fallback timer covers what no commit
		 * reports.  Either may mean new events.
		 */
		if (woken)
			foreach(lc, endpoints)
				((Endpoint *) lfirst(lc))->maybe_more = true;
	}
}
