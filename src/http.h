/*-------------------------------------------------------------------------
 *
 * http.h
 *		  Non-blocking HTTP requests with libcurl's multi interface
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_HTTP_H
#define MFGSYNC_HTTP_H

#include <curl/curl.h>

#include "lib/stringinfo.h"
#include "utils/timestamp.h"

typedef struct MfgHttp MfgHttp;

/* mfgsync.http_client */
typedef enum MfgHttpClient
{
	MFG_HTTP_CLIENT_BUILTIN,
	MFG_HTTP_CLIENT_LIBCURL
} MfgHttpClient;

extern int	mfgsync_http_client;

/* how one request is made */
typedef struct MfgHttpOptions
{
	long		timeout_ms;
	long		connect_timeout_ms;
	size_t		max_response_bytes;
	const char *ca_file;		/* NULL: the system's CA bundle */
} MfgHttpOptions;

/* one request and, once done, its outcome */
typedef struct MfgHttpRequest
{
	CURL	   *easy;
	void	   *owner;			/* the caller's bookkeeping */
	struct curl_slist *headers;
	StringInfoData body;		/* request body */
	StringInfoData response;	/* at most max_response_bytes of the answer */
	size_t		max_response_bytes;
	bool		truncated;		/* the answer was longer */
	TimestampTz started;

	/* outcome */
	CURLcode	result;
	long		status;			/* 0 when no HTTP answer was received */
	char		error[CURL_ERROR_SIZE];
	double		latency_ms;
	char	   *redirect_url;	/* Location, resolved, for a 3xx */
	int			retry_after_s;	/* Retry-After in seconds, -1 if absent */

	/* a request of the plain HTTP/1.1 client (http_plain.c): easy is NULL */
	char	   *url;
	long		timeout_ms;
	long		connect_timeout_ms;
	void	   *conn;			/* the connection serving it */
	bool		resent;			/* sent again after a stale connection */
} MfgHttpRequest;

extern MfgHttp *mfgsync_http_create(MemoryContext cxt);
extern MfgHttpRequest *mfgsync_http_request(MfgHttp *http, const char *url,
											const MfgHttpOptions *opts);
extern MfgHttpRequest *mfgsync_http_post_request(MfgHttp *http, const char *url,
												 const MfgHttpOptions *opts);
extern void mfgsync_http_start(MfgHttp *http, MfgHttpRequest *req);
extern void mfgsync_http_start_get(MfgHttp *http, MfgHttpRequest *req);
extern void mfgsync_http_abort(MfgHttp *http, MfgHttpRequest *req);
extern bool mfgsync_http_wait(MfgHttp *http, long max_wait_ms);
extern MfgHttpRequest *mfgsync_http_next_done(MfgHttp *http);
extern void mfgsync_http_free(MfgHttp *http, MfgHttpRequest *req);
extern int	mfgsync_http_in_flight(MfgHttp *http);
extern bool mfgsync_http_same_origin(const char *url, const char *target);
extern int	mfgsync_http_retry_after(const char *value);

#endif							/* MFGSYNC_HTTP_H */
