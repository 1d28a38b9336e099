/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		  Writing change events into the transactional outbox (and reading
 *		  one back for the previews)
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/outbox.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_OUTBOX_H
#define MFGSYNC_OUTBOX_H

#include "webhook.h"

/* actions, as stored in mfgsync.outbox.action */
#define MFGSYNC_ACTION_ADD		"Add"
#define MFGSYNC_ACTION_CHANGE	"Change"
#define MFGSYNC_ACTION_DELETE	"Delete"
#define MFGSYNC_ACTION_TRUNCATE "Truncate"

/*
 * Event ids are handed out in blocks of this many, one per value of
 * mfgsync.event_id_seq, whose INCREMENT BY must be the same (src/outbox.c).
 */
#define MFGSYNC_ID_BLOCK 1000

typedef struct MfgOutboxWriter MfgOutboxWriter;

extern void mfgsync_outbox_init(void);
extern MfgOutboxWriter *mfgsync_outbox_open(int64 expected_rows,
											 bool truncating);
extern void mfgsync_outbox_append(MfgOutboxWriter *w, text *message_type,
								  const char *action, const char *key,
								  const char *data, const char *old_data);
extern void mfgsync_outbox_close(MfgOutboxWriter *w);
extern void mfgsync_outbox_read_event(int64 event_id, MfgEvent *ev);

#endif							/* MFGSYNC_OUTBOX_H */
