/*-------------------------------------------------------------------------
 *
 * worker.h
 *		  Background workers: shared state, wake-ups, launcher and senders
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_WORKER_H
#define MFGSYNC_WORKER_H

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"

/*
 * State shared by every backend and the workers, in the main shared memory
 * segment.  Latches live in PGPROC, which never moves, so a stale pointer
 * only wakes a process that did not need it.
 */
typedef struct MfgSenderSlot
{
	Latch	   *latch;
	bool		has_endpoints;	/* only these are woken by commits */
} MfgSenderSlot;

typedef struct MfgSharedState
{
	pg_atomic_uint32 config_generation; /* bumped when endpoints change */
	pg_atomic_uint32 launcher_generation;	/* bumped when a launcher starts */
	Latch	   *launcher_latch;
	int			nsenders;
	MfgSenderSlot sender[FLEXIBLE_ARRAY_MEMBER];
} MfgSharedState;

extern MfgSharedState *mfgsync_shared;

/* launcher.c */
extern void mfgsync_worker_init(void);
extern void mfgsync_wake_on_commit(void);
extern void mfgsync_notify_on_commit(void);
extern bool mfgsync_extension_exists(void);
extern BackgroundWorkerHandle *mfgsync_start_worker(const char *function,
												   const char *type, const char *name,
												   int32 main_arg, const void *extra,
												   Size extralen, const char *hint);
extern PGDLLEXPORT void mfgsync_launcher_main(Datum main_arg);

/* sender.c */
extern PGDLLEXPORT void mfgsync_sender_main(Datum main_arg);

#endif							/* MFGSYNC_WORKER_H */
