/*-------------------------------------------------------------------------
 *
 * guc.c
 *		  Every mfgsync.* configuration setting, in one place
 *
 * All settings are defined here and nowhere else, and the "mfgsync" prefix
 * is reserved so that a misspelt setting in postgresql.conf is reported
 * instead of silently ignored.  doc/configuration.md describes each one;
 * the README carries the summary table.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"

#include "mfgsync.h"
#include "b2mml_in.h"
#include "http.h"

/*
 * mfgsync.database: the database whose outbox the background workers
 * deliver.  Fixed at server start, as the launcher connects to it once.
 */
char	   *mfgsync_database = NULL;

/*
 * mfgsync.max_workers: how many sender workers the launcher may run.  Each
 * one takes a background worker slot (max_worker_processes).
 */
int			mfgsync_max_workers = 4;

/*
 * mfgsync.batch_size: how many events a sender claims in one transaction
 * and how many go into one batched CloudEvents request.
 */
int			mfgsync_batch_size = 100;

/*
 * mfgsync.retention: how long delivered events stay in the outbox for
 * audit and replay before they are retired in bulk, in seconds.  The
 * launcher uses the server's value; a superuser may SET another one for a
 * retire() by hand.
 */
int			mfgsync_retention = 7 * 24 * 3600;

/*
 * mfgsync.poll_interval: the senders' fallback timer.  Commits wake them;
 * the timer only catches what no commit reported (COMMIT PREPARED).
 */
int			mfgsync_poll_interval = 10000;
/* B2MML sender identity (src/b2mml.c) */
char	   *mfgsync_b2mml_component_id = NULL;

/*
 * mfgsync.max_pull_workers: how many scheduled pull job runs may go on at
 * once, each in a dynamic background worker (max_worker_processes).  0
 * stops the scheduler; mfgsync.run_pull() still works.
 */
int			mfgsync_max_pull_workers = 2;

/*
 * mfgsync.b2mml_schema: the XSD that inbound B2MML XML must validate
 * against (mfgsync-b2mml-V0600.xsd next to MESA's V0600 files).  Empty:
 * receive_b2mml checks what it reads itself but not element order or the
 * rest of the schema.  Superuser only: the server reads the file.
 */
char	   *mfgsync_b2mml_schema = NULL;

/*
 * mfgsync.b2mml_dedup_key: what identifies an inbound message, so that a
 * copy of it changes nothing.  BODID is MESA's unique message id; edinn
 * sends none and puts a unique id in Sender/LogicalID instead.
 */
int			mfgsync_b2mml_dedup_key = MFG_B2MML_DEDUP_AUTO;

static const struct config_enum_entry b2mml_dedup_key_options[] = {
	{"auto", MFG_B2MML_DEDUP_AUTO, false},
	{"bodid", MFG_B2MML_DEDUP_BODID, false},
	{"logicalid", MFG_B2MML_DEDUP_LOGICALID, false},
	{NULL, 0, false}
};

/*
 * mfgsync.http_client: what the senders post to http:// endpoints with.
 * builtin: mfgsync's own HTTP/1.1 client (src/http_plain.c), about three
 * times cheaper per request; libcurl: libcurl, as https:// always is (a
 * fallback should a receiver not get along with the builtin client).
 */
int			mfgsync_http_client = MFG_HTTP_CLIENT_BUILTIN;

static const struct config_enum_entry http_client_options[] = {
	{"builtin", MFG_HTTP_CLIENT_BUILTIN, false},
	{"libcurl", MFG_HTTP_CLIENT_LIBCURL, false},
	{NULL, 0, false}
};

/*
 * check_database
 *		GUC check hook: the worker database must be named.
 */
static bool
check_database(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("mfgsync.database must name a database.");
		return false;
	}
	return true;
}

/*
 * mfgsync_guc_define
 *		Define every mfgsync.* setting and reserve the prefix.
 *
 * Called once from _PG_init in the postmaster.
 */
void
mfgsync_guc_define(void)
{
	DefineCustomStringVariable("mfgsync.database",
							   "Database in which the mfgsync background workers deliver events.",
							   NULL,
							   &mfgsync_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   check_database, NULL, NULL);

	DefineCustomIntVariable("mfgsync.max_workers",
							"Maximum number of mfgsync sender workers.",
							NULL,
							&mfgsync_max_workers,
							4, 1, 64,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mfgsync.batch_size",
							"Number of events a sender claims and sends per batch.",
							NULL,
							&mfgsync_batch_size,
							100, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mfgsync.retention",
							"How long delivered events are kept in the outbox.",
							NULL,
							&mfgsync_retention,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mfgsync.poll_interval",
							"Fallback interval at which senders look for new events.",
							"Senders are woken when events commit; this timer is a fallback.",
							&mfgsync_poll_interval,
							10000, 100, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/* pull jobs (src/pull.c) */
	DefineCustomIntVariable("mfgsync.max_pull_workers",
							"Maximum number of pull job runs the scheduler runs at once.",
							"Each run takes a background worker slot while it runs; 0 stops the scheduler.",
							&mfgsync_max_pull_workers,
							2, 0, 64,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	/*
	 * B2MML (src/b2mml.c).  mfgsync.b2mml_component_id: what B2MML
	 * receivers see in ApplicationArea/Sender/ComponentID, unless the
	 * endpoint sets "component_id"; empty leaves the element out.
	 */
	DefineCustomStringVariable("mfgsync.b2mml_component_id",
							   "Sender/ComponentID of the B2MML messages mfgsync sends.",
							   "An endpoint's \"component_id\" option overrides it; empty leaves the element out.",
							   &mfgsync_b2mml_component_id,
							   "mfgsync",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	/* inbound B2MML (b2mml_in.c) */
	DefineCustomStringVariable("mfgsync.b2mml_schema",
							   "XSD file that inbound B2MML XML messages are validated against.",
							   "Empty: no XSD validation, only mfgsync's own checks.",
							   &mfgsync_b2mml_schema,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomEnumVariable("mfgsync.b2mml_dedup_key",
							 "ApplicationArea field that identifies an inbound B2MML message.",
							 "auto: BODID when present, else Sender/LogicalID.",
							 &mfgsync_b2mml_dedup_key,
							 MFG_B2MML_DEDUP_AUTO,
							 b2mml_dedup_key_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("mfgsync.http_client",
							 "HTTP client the senders use for http:// endpoints.",
							 "builtin: mfgsync's own HTTP/1.1 client; libcurl: libcurl, as for https://.",
							 &mfgsync_http_client,
							 MFG_HTTP_CLIENT_BUILTIN,
							 http_client_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved(MFGSYNC_NAME);
}
