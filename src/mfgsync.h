/*-------------------------------------------------------------------------
 *
 * mfgsync.h
 *		  Shared declarations of the mfgsync extension
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/mfgsync.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_H
#define MFGSYNC_H

/* name of the extension, its schema and its GUC prefix */
#define MFGSYNC_NAME "mfgsync"

/* in guc.c */
extern char *mfgsync_database;
extern int	mfgsync_max_workers;
extern int	mfgsync_batch_size;
extern int	mfgsync_retention;
extern int	mfgsync_poll_interval;
extern int	mfgsync_max_pull_workers;

extern void mfgsync_guc_define(void);
extern void mfgsync_check_spi(int rc, int expected, const char *what);

#endif							/* MFGSYNC_H */
