/*-------------------------------------------------------------------------
 *
 * http.c
 *		  Non-blocking HTTP requests with libcurl's multi interface
 *
 * A sender keeps one multi handle for all its endpoints, so connections
 * stay alive between batches and a slow endpoint only occupies its own
 * sockets.  libcurl reports the sockets it needs through a socket
 * callback; mfgsync_http_wait() waits on them together with the process
 * latch and postmaster death in one WaitEventSet, so a commit wakes the
 * sender in the middle of transfers and SIGTERM stops it promptly.
 *
 * POSTs to http:// URLs (the senders' webhooks) go through mfgsync's own
 * HTTP/1.1 client (http_plain.c) unless mfgsync.http_client says libcurl;
 * its connections share the wait.
 *
 * Every request is restricted to http and https, verifies TLS peers, has a
 * total and a connect timeout, and keeps at most max_response_bytes of the
 * answer: a longer answer is cut off and the transfer aborted.  Redirects
 * are never followed here; the caller decides (mfgsync_http_same_origin).
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "http.h"
#include "http_plain.h"
#include "mfgsync.h"

typedef struct MfgHttpSocket
{
	curl_socket_t fd;
	int			what;			/* CURL_POLL_IN, _OUT or _INOUT */
} MfgHttpSocket;

struct MfgHttp
{
	MemoryContext cxt;
	CURLM	   *multi;
	MfgHttpSocket *sockets;
	int			nsockets;
	int			maxsockets;
	TimestampTz timer;			/* when libcurl wants its timeout; 0: none */
	int			in_flight;
	CURL	   *idle[64];		/* easy handles kept for reuse */
	int			nidle;
	MfgPlain   *plain;			/* POSTs to http:// URLs */
};

static bool curl_initialized = false;

/* libcurl tells which sockets to wait on */
static int
socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp,
				void *socketp)
{
	MfgHttp    *http = (MfgHttp *) userp;
	int			i;

	for (i = 0; i < http->nsockets; i++)
		if (http->sockets[i].fd == fd)
			break;

	if (what == CURL_POLL_REMOVE)
	{
		if (i < http->nsockets)
			http->sockets[i] = http->sockets[--http->nsockets];
		return 0;
	}
	if (i == http->nsockets)
	{
		if (http->nsockets == http->maxsockets)
		{
			http->maxsockets *= 2;
			http->sockets = repalloc(http->sockets,
									 sizeof(MfgHttpSocket) * http->maxsockets);
		}
		http->sockets[http->nsockets++].fd = fd;
	}
	http->sockets[i].what = what;
	return 0;
}

/* libcurl tells when it wants to be called for timeouts */
static int
timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	MfgHttp    *http = (MfgHttp *) userp;

	if (timeout_ms < 0)
		http->timer = 0;
	else
		http->timer = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  timeout_ms);
	return 0;
}

/* keep at most max_response_bytes of the answer */
static size_t
write_callback(char *data, size_t size, size_t nmemb, void *userp)
{
	MfgHttpRequest *req = (MfgHttpRequest *) userp;
	size_t		len = size * nmemb;

	if (req->response.len + len > req->max_response_bytes)
	{
		req->truncated = true;
		appendBinaryStringInfo(&req->response, data,
							   req->max_response_bytes - req->response.len);
		return 0;				/* aborts the transfer */
	}
	appendBinaryStringInfo(&req->response, data, len);
	return len;
}

/* a request without a transport yet, in the client's context */
static MfgHttpRequest *
new_request(MfgHttp *http, const MfgHttpOptions *opts)
{
	MfgHttpRequest *req;
	MemoryContext oldcxt = MemoryContextSwitchTo(http->cxt);

	req = palloc0(sizeof(MfgHttpRequest));
	initStringInfo(&req->body);
	initStringInfo(&req->response);
	req->max_response_bytes = opts->max_response_bytes;
	req->retry_after_s = -1;
	MemoryContextSwitchTo(oldcxt);
	return req;
}

/* release what a request holds besides its libcurl handle */
static void
free_request(MfgHttpRequest *req)
{
	curl_slist_free_all(req->headers);
	pfree(req->body.data);
	pfree(req->response.data);
	if (req->redirect_url)
		pfree(req->redirect_url);
	if (req->url)
		pfree(req->url);
	pfree(req);
}

/*
 * mfgsync_http_create
 *		A multi handle whose bookkeeping lives in cxt.
 */
MfgHttp *
mfgsync_http_create(MemoryContext cxt)
{
	MfgHttp    *http;

	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}

	http = MemoryContextAllocZero(cxt, sizeof(MfgHttp));
	http->cxt = cxt;
	http->maxsockets = 16;
	http->sockets = MemoryContextAlloc(cxt, sizeof(MfgHttpSocket) * http->maxsockets);
	http->multi = curl_multi_init();
	if (http->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, 1024L);
	http->plain = mfgsync_plain_create(cxt);
	return http;
}

/*
 * mfgsync_http_request
 *		A POST request to url; the caller adds headers and the body, then
 *		starts it.
 */
MfgHttpRequest *
mfgsync_http_request(MfgHttp *http, const char *url, const MfgHttpOptions *opts)
{
	MfgHttpRequest *req = new_request(http, opts);

	if (http->nidle > 0)
	{
		req->easy = http->idle[--http->nidle];
		curl_easy_reset(req->easy);
	}
	else
		req->easy = curl_easy_init();
	if (req->easy == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	curl_easy_setopt(req->easy, CURLOPT_URL, url);
	curl_easy_setopt(req->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(req->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(req->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(req->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts->ca_file)
		curl_easy_setopt(req->easy, CURLOPT_CAINFO, opts->ca_file);
	curl_easy_setopt(req->easy, CURLOPT_NOSIGNAL, 1L);
	/* no proxy from the server's environment */
	curl_easy_setopt(req->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(req->easy, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
	curl_easy_setopt(req->easy, CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
	curl_easy_setopt(req->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(req->easy, CURLOPT_USERAGENT, "mfgsync/" MFGSYNC_VERSION);
	curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, write_callback);
	curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(req->easy, CURLOPT_ERRORBUFFER, req->error);
	curl_easy_setopt(req->easy, CURLOPT_PRIVATE, req);
	return req;
}

/*
 * mfgsync_http_post_request
 *		A POST request to url, like mfgsync_http_request(); for an http://
 *		URL it is made by the plain HTTP/1.1 client unless
 *		mfgsync.http_client says libcurl, so the caller must not touch
 *		req->easy.
 */
MfgHttpRequest *
mfgsync_http_post_request(MfgHttp *http, const char *url, const MfgHttpOptions *opts)
{
	MfgHttpRequest *req;

	if (mfgsync_http_client == MFG_HTTP_CLIENT_LIBCURL ||
		!mfgsync_plain_accepts(http->plain, url))
		return mfgsync_http_request(http, url, opts);

	req = new_request(http, opts);
	req->url = MemoryContextStrdup(http->cxt, url);
	req->timeout_ms = opts->timeout_ms;
	req->connect_timeout_ms = opts->connect_timeout_ms;
	return req;
}

/* hand a prepared request to the multi handle */
static void
add_request(MfgHttp *http, MfgHttpRequest *req)
{
	CURLMcode	rc;

	curl_easy_setopt(req->easy, CURLOPT_HTTPHEADER, req->headers);
	req->started = GetCurrentTimestamp();
	rc = curl_multi_add_handle(http->multi, req->easy);
	if (rc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not start an HTTP request: %s",
						curl_multi_strerror(rc))));
	http->in_flight++;
}

/*
 * mfgsync_http_start
 *		Hand a POST request with its headers and body to the multi handle.
 */
void
mfgsync_http_start(MfgHttp *http, MfgHttpRequest *req)
{
	if (req->easy == NULL)
	{
		req->started = GetCurrentTimestamp();
		http->in_flight++;
		mfgsync_plain_start(http->plain, req);
		return;
	}
	curl_easy_setopt(req->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(req->easy, CURLOPT_POSTFIELDS, req->body.data);
	curl_easy_setopt(req->easy, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t) req->body.len);
	add_request(http, req);
}

/*
 * mfgsync_http_start_get
 *		Hand a GET request with its headers to the multi handle (the
 *		mfgsync_http foreign-data wrapper; the caller may have replaced the
 *		write callback to stream the answer).
 */
void
mfgsync_http_start_get(MfgHttp *http, MfgHttpRequest *req)
{
	curl_easy_setopt(req->easy, CURLOPT_HTTPGET, 1L);
	add_request(http, req);
}

/*
 * mfgsync_http_abort
 *		Stop a request that may still be running and release it; for error
 *		paths (does not raise).
 */
void
mfgsync_http_abort(MfgHttp *http, MfgHttpRequest *req)
{
	if (req->easy == NULL)
	{
		if (mfgsync_plain_abort(http->plain, req) && http->in_flight > 0)
			http->in_flight--;
		free_request(req);
		return;
	}
	if (req->started != 0 &&
		curl_multi_remove_handle(http->multi, req->easy) == CURLM_OK &&
		req->result == CURLE_OK && req->status == 0 && http->in_flight > 0)
		http->in_flight--;
	/* a handle stopped mid-transfer is not kept for reuse */
	curl_easy_cleanup(req->easy);
	free_request(req);
}

/* let libcurl act on a socket, or on its timeout */
static void
socket_action(MfgHttp *http, curl_socket_t fd, int flags)
{
	int			running;
	CURLMcode	rc;

	rc = curl_multi_socket_action(http->multi, fd, flags, &running);
	if (rc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("HTTP transfer failed: %s", curl_multi_strerror(rc))));
}

/*
 * mfgsync_http_wait
 *		Wait until a socket is ready, libcurl's timer expires, the latch is
 *		set or max_wait_ms pass (-1: no limit), and drive the transfers.
 *
 * The latch is not reset here; the caller's loop does that.  Returns
 * true when the latch was set or max_wait_ms passed (not when the wait
 * ended early for a timer of libcurl's or of the plain client's).
 */
bool
mfgsync_http_wait(MfgHttp *http, long max_wait_ms)
{
	bool		woken = false;
	WaitEventSet *set;
	bool		own_set;
	WaitEvent  *events;
	int			maxevents;
	int			nevents;
	int			i;
	long		timeout = max_wait_ms;
	long		plain_timeout;
	TimestampTz now = GetCurrentTimestamp();

	if (http->timer != 0)
	{
		long		t = TimestampDifferenceMilliseconds(now, http->timer);

		if (http->timer <= now)
			t = 0;
		if (timeout < 0 || t < timeout)
			timeout = t;
	}
	plain_timeout = mfgsync_plain_timeout(http->plain, now);
	if (plain_timeout >= 0 && (timeout < 0 || plain_timeout < timeout))
		timeout = plain_timeout;

	/*
	 * Only the plain client's connections: its set lasts as long as they
	 * do.  With libcurl's sockets, whose interest changes with every
	 * transfer, a set for this wait.
	 */
	maxevents = 2 + http->nsockets + mfgsync_plain_nsockets(http->plain);
	own_set = http->nsockets > 0 || mfgsync_plain_nsockets(http->plain) == 0;
	if (!own_set)
		set = mfgsync_plain_wait_set(http->plain);
	else
	{
		set = CreateWaitEventSet(CurrentMemoryContext, maxevents);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		/* a single-user backend (the FDW) has no postmaster to watch */
		if (IsUnderPostmaster)
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (i = 0; i < http->nsockets; i++)
		{
			uint32		ev = 0;

			if (http->sockets[i].what & CURL_POLL_IN)
				ev |= WL_SOCKET_READABLE;
			if (http->sockets[i].what & CURL_POLL_OUT)
				ev |= WL_SOCKET_WRITEABLE;
			AddWaitEventToSet(set, ev, http->sockets[i].fd, NULL, NULL);
		}
		mfgsync_plain_add_sockets(http->plain, set);
	}
	events = palloc(sizeof(WaitEvent) * maxevents);
	nevents = WaitEventSetWait(set, timeout, events, maxevents,
							   PG_WAIT_EXTENSION);
	if (own_set)
		FreeWaitEventSet(set);

	for (i = 0; i < nevents; i++)
	{
		int			flags = 0;

		if (events[i].events & WL_LATCH_SET)
		{
			woken = true;
			continue;
		}
		if (events[i].user_data != NULL)
		{
			mfgsync_plain_socket_ready(http->plain, events[i].user_data);
			continue;
		}
		if (events[i].events & WL_SOCKET_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events[i].events & WL_SOCKET_WRITEABLE)
			flags |= CURL_CSELECT_OUT;
		socket_action(http, events[i].fd, flags);
	}
	pfree(events);
	/* the caller's time is up (not a timer of libcurl's or of ours) */
	if (nevents == 0 && timeout == max_wait_ms)
		woken = true;

	if (http->timer != 0 && http->timer <= GetCurrentTimestamp())
	{
		http->timer = 0;
		socket_action(http, CURL_SOCKET_TIMEOUT, 0);
	}
	mfgsync_plain_check_timers(http->plain);
	return woken;
}

/*
 * mfgsync_http_next_done
 *		A finished request with its outcome filled in, or NULL.
 */
MfgHttpRequest *
mfgsync_http_next_done(MfgHttp *http)
{
	CURLMsg    *msg;
	int			left;
	MfgHttpRequest *done = mfgsync_plain_next_done(http->plain);

	if (done != NULL)
	{
		http->in_flight--;
		return done;
	}
	while ((msg = curl_multi_info_read(http->multi, &left)) != NULL)
	{
		MfgHttpRequest *req;
		char	   *location = NULL;
		struct curl_header *h;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		req->result = msg->data.result;
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->status);
		req->latency_ms = (double) (GetCurrentTimestamp() - req->started) / 1000.0;
		if (req->status >= 300 && req->status < 400 &&
			curl_easy_getinfo(req->easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
			location != NULL)
			req->redirect_url = MemoryContextStrdup(http->cxt, location);
		if ((req->status == 429 || req->status == 503) &&
			curl_easy_header(req->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
			req->retry_after_s = mfgsync_http_retry_after(h->value);
		if (req->error[0] == '\0' && req->result != CURLE_OK)
			strlcpy(req->error, curl_easy_strerror(req->result), CURL_ERROR_SIZE);
		curl_multi_remove_handle(http->multi, req->easy);
		http->in_flight--;
		return req;
	}
	return NULL;
}

/*
 * mfgsync_http_retry_after
 *		Seconds to wait from a Retry-After value (delay-seconds or an
 *		HTTP-date); -1 if it is neither.
 */
int
mfgsync_http_retry_after(const char *value)
{
	char	   *end;
	long		secs;
	time_t		when;

	while (*value == ' ')
		value++;
	secs = strtol(value, &end, 10);
	if (end != value && (*end == '\0' || *end == ' '))
		return (int) Max(0, Min(secs, 86400));
	when = curl_getdate(value, NULL);
	if (when < 0)
		return -1;
	secs = (long) (when - time(NULL));
	return (int) Max(0, Min(secs, 86400));
}

/*
 * mfgsync_http_free
 *		Release a finished request.
 */
void
mfgsync_http_free(MfgHttp *http, MfgHttpRequest *req)
{
	if (req->easy == NULL)
		;
	else if (http->nidle < (int) lengthof(http->idle))
		http->idle[http->nidle++] = req->easy;
	else
		curl_easy_cleanup(req->easy);
	free_request(req);
}

int
mfgsync_http_in_flight(MfgHttp *http)
{
	return http->in_flight;
}

/* lower-cased scheme, host and port of url, or false */
static bool
url_origin(const char *url, char **scheme, char **host, char **port)
{
	CURLU	   *u = curl_url();
	bool		ok;

	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK;
	curl_url_cleanup(u);
	return ok;
}

/*
 * mfgsync_http_same_origin
 *		May a request to url follow a redirect to target?  Only to the same
 *		host, over http or https, and never from https down to http.
 */
bool
mfgsync_http_same_origin(const char *url, const char *target)
{
	char	   *s1 = NULL,
			   *h1 = NULL,
			   *p1 = NULL,
			   *s2 = NULL,
			   *h2 = NULL,
			   *p2 = NULL;
	bool		same;

	same = url_origin(url, &s1, &h1, &p1) && url_origin(target, &s2, &h2, &p2) &&
		(pg_strcasecmp(s2, "https") == 0 ||
		 (pg_strcasecmp(s2, "http") == 0 && pg_strcasecmp(s1, "http") == 0)) &&
		pg_strcasecmp(h1, h2) == 0;
	curl_free(s1);
	curl_free(h1);
	curl_free(p1);
	curl_free(s2);
	curl_free(h2);
	curl_free(p2);
	return same;
}
