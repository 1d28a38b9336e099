/*-------------------------------------------------------------------------
 *
 * mfgsync.c
 *		  Module entry point: load-time checks and subsystem set-up
 *
 * mfgsync runs background workers (the delivery side), so it must be
 * loaded by the postmaster through shared_preload_libraries.  Loading it
 * any other way would give a half-working extension whose events are
 * captured but never delivered, so _PG_init refuses that outright.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/mfgsync.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "executor/spi.h"
#include "miscadmin.h"

#include "http_fdw.h"
#include "mfgsync.h"
#include "outbox.h"
#include "worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * _PG_init
 *		Called once when the postmaster loads the library.
 *
 * Raises ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE when the library is
 * loaded by a backend (CREATE EXTENSION, LOAD) instead of the postmaster.
 */
void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("mfgsync must be loaded via \"shared_preload_libraries\""),
				 errdetail("mfgsync delivers events with background workers, which only the postmaster can start."),
				 errhint("Add mfgsync to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));

	mfgsync_guc_define();
	mfgsync_worker_init();
	mfgsync_http_fdw_init();
	mfgsync_outbox_init();
}

/*
 * mfgsync_check_spi
 *		Raise "<what> failed: <SPI code>" unless an SPI call returned
 *		expected; for results that only a bug could make unexpected.
 */
void
mfgsync_check_spi(int rc, int expected, const char *what)
{
	if (rc != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(rc));
}
