/*-------------------------------------------------------------------------
 *
 * pull.h
 *		  Pull jobs: the launcher's scheduling step and the run worker
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/pull.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_PULL_H
#define MFGSYNC_PULL_H

#include "postgres.h"

/* in pull.c */
extern void mfgsync_pull_schedule(long *wait_ms);
extern PGDLLEXPORT void mfgsync_pull_main(Datum main_arg);

#endif							/* MFGSYNC_PULL_H */
