/*-------------------------------------------------------------------------
 *
 * http_plain.h
 *		  HTTP/1.1 POST over kept-alive TCP connections, for http:// URLs
 *
 * The part of http.c's client that does not go through libcurl; only
 * http.c calls these.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_plain.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_HTTP_PLAIN_H
#define MFGSYNC_HTTP_PLAIN_H

#include "storage/latch.h"

#include "http.h"

typedef struct MfgPlain MfgPlain;

extern MfgPlain *mfgsync_plain_create(MemoryContext cxt);
extern bool mfgsync_plain_accepts(MfgPlain *plain, const char *url);
extern void mfgsync_plain_start(MfgPlain *plain, MfgHttpRequest *req);
extern bool mfgsync_plain_abort(MfgPlain *plain, MfgHttpRequest *req);
extern int	mfgsync_plain_nsockets(MfgPlain *plain);
extern WaitEventSet *mfgsync_plain_wait_set(MfgPlain *plain);
extern void mfgsync_plain_add_sockets(MfgPlain *plain, WaitEventSet *set);
extern long mfgsync_plain_timeout(MfgPlain *plain, TimestampTz now);
extern void mfgsync_plain_socket_ready(MfgPlain *plain, void *conn);
extern void mfgsync_plain_check_timers(MfgPlain *plain);
extern MfgHttpRequest *mfgsync_plain_next_done(MfgPlain *plain);

#endif							/* MFGSYNC_HTTP_PLAIN_H */
