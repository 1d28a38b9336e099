/*-------------------------------------------------------------------------
 *
 * http_fdw_fetch.c
 *		  mfgsync_http: requests, the streaming row splitter and pagination
 *
 * A scan reads a resource page by page.  Each page is one GET request on
 * the backend's libcurl multi handle (src/http.c); the backend waits on
 * curl's sockets together with its latch, so query cancel and
 * statement_timeout (which set the latch) interrupt a transfer at once.
 *
 * Rows are parsed while bytes arrive.  json-c builds whole values, so the
 * bytes are split here: a small structural scanner walks the document
 * outside the row array (kept as text with the array emptied, a few bytes
 * for the cursor or next-URL field), and inside the row array it finds the
 * end of each element, which json-c's tokener then parses on its own.
 * The buffer of received bytes is bounded: when a consumer falls behind,
 * the write callback pauses the transfer, and mfgsync_fdw_scan_next
 * resumes it once the buffer is drained.  So a scan holds one row (plus at
 * most about one megabyte of unparsed bytes), never the response.
 *
 * Nothing here raises inside a libcurl callback: callbacks only copy bytes
 * and set flags; errors are raised by the caller after curl returns.  A
 * request still running when an error unwinds the query is stopped by a
 * reset callback on the scan's memory context.
 *
 * Retries: 429, 502, 503 and 504 answers, and connection failures before
 * any byte of the answer, are retried with exponential back-off (or after
 * Retry-After, up to max_retry_wait).  A 401 with OAuth2 credentials
 * fetches a new token once.  Every other non-2xx answer raises an error
 * with the status, the start of the body and the request, secrets
 * redacted.  An answer that is cut off or not JSON raises an error with
 * the byte offset: an error is never turned into an empty result.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw_fetch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/memutils.h"


/* stop reading from the network while this many bytes wait to be parsed */
#define MFG_FDW_BUFFER_HIGH (1024 * 1024)
/* the outside of the row array is kept to read cursors: at most this */
#define MFG_FDW_OUTER_MAX (1024 * 1024)
/* how much of an error answer is kept and shown */
#define MFG_FDW_ERRBODY_MAX 2048
#define MFG_FDW_ERRBODY_SHOWN 300
#define MFG_FDW_MAX_DEPTH 64
#define MFG_FDW_MAX_REDIRECTS 5

/* where the splitter is */
typedef enum SplitMode
{
	SPLIT_OUTER,				/* outside the row array */
	SPLIT_ROWS,					/* between elements of the row array */
	SPLIT_ELEMENT,				/* inside one element */
	SPLIT_DONE					/* the document is complete */
} SplitMode;

/* a container of the outer document */
typedef struct SplitFrame
{
	char		kind;			/* '{' or '[' */
	int			state;			/* FRAME_* */
	bool		on_path;		/* along the row path so far */
	int			count;			/* elements seen (arrays) */
	bool		key_match;		/* the last key is the next path step */
} SplitFrame;

#define FRAME_KEY		0		/* expect a key or the end */
#define FRAME_COLON		1
#define FRAME_VALUE		2		/* expect a value (or ']' in an array) */
#define FRAME_AFTER		3		/* expect ',' or the end */

struct MfgFdwScan
{
	MfgFdwTable *t;
	MemoryContext cxt;			/* the scan's lifetime */
	MfgHttp    *http;			/* the backend's multi handle */
	MfgHttpRequest *req;		/* the running request, or NULL */

	/* the scan */
	List	   *params;			/* MfgFdwParam: pushed-down quals */
	int64		limit;			/* rows wanted at most, -1: all */
	bool		exhausted;		/* no page follows */
	int64		page_value;		/* page number or offset of this page */
	char	   *next_url;		/* the next page's URL (cursor/next/link) */
	char	   *url;			/* this page's URL, without credentials */
	int			redirects;		/* redirects followed for this page */
	int			attempt;		/* retries made for this page */
	bool		refreshed;		/* token refreshed for this page */
	uint64	   *seen;			/* hashes of cursors/URLs: loop detection */
	int			nseen;
	int			maxseen;
	MfgFdwStats stats;

	/* the answer to the current request */
	bool		status_known;
	long		status;
	bool		too_big;		/* more than max_page_bytes */
	bool		paused;
	bool		finished;		/* curl is done with the request */
	StringInfoData buf;			/* received, unparsed bytes */
	int			pos;			/* the splitter's position in buf */
	int64		base;			/* byte offset of buf.data[0] in the page */
	int64		page_bytes;
	int64		page_rows;
	StringInfoData errbody;		/* start of a non-2xx answer */

	/* the splitter */
	SplitMode	mode;
	SplitFrame	frame[MFG_FDW_MAX_DEPTH];
	int			depth;
	bool		in_string;		/* outer: inside a string */
	bool		escape;
	bool		in_scalar;
	bool		string_is_key;
	StringInfoData key;			/* the key being read, along the path */
	bool		found_rows;
	int			elem_start;		/* start of the element in buf */
	int			elem_depth;
	bool		elem_string;
	bool		elem_escape;
	StringInfoData outer;		/* the document with the row array empty */

	/* the row */
	struct json_tokener *tok;
	struct json_object *row;	/* the last row returned */
	int64		rowno;			/* 1-based, over the whole scan */
	int64		row_offset;		/* byte offset of the last row in its page */
	MfgFdwRowSink *sink;		/* the caller's columns, or NULL */
	bool		row_parsed;		/* split() filled the sink already */
};

static MfgHttp *backend_http = NULL;

static void malformed(MfgFdwScan *s, int64 offset, const char *detail) pg_attribute_noreturn();

/* release what libcurl and json-c hold when the scan's context goes */
static void
scan_cleanup(void *arg)
{
	MfgFdwScan *s = (MfgFdwScan *) arg;

	if (s->req)
		mfgsync_http_abort(s->http, s->req);
	s->req = NULL;
	if (s->row)
		json_object_put(s->row);
	s->row = NULL;
	if (s->tok)
		json_tokener_free(s->tok);
	s->tok = NULL;
}

/*
 * mfgsync_fdw_http
 *		The backend's multi handle, created on first use; connections to
 *		an API stay alive from one scan to the next.
 */
MfgHttp *
mfgsync_fdw_http(void)
{
	if (backend_http == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext,
												  "mfgsync http_fdw",
												  ALLOCSET_SMALL_SIZES);

		backend_http = mfgsync_http_create(cxt);
	}
	return backend_http;
}

/*
 * mfgsync_fdw_wait
 *		Wait for the network (or the latch) once and drive the transfers;
 *		raises on query cancel, statement_timeout and termination.
 */
void
mfgsync_fdw_wait(MfgHttp *http)
{
	mfgsync_http_wait(http, 1000);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* sleep ms milliseconds, honouring interrupts */
static void
wait_ms(long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														   until);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* URL-encode a query parameter name or value into buf */
static void
append_encoded(StringInfo buf, const char *s)
{
	char	   *e = curl_easy_escape(NULL, s, 0);

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	appendStringInfoString(buf, e);
	curl_free(e);
}

static void
append_param(StringInfo buf, const char *name, const char *value)
{
	appendStringInfoChar(buf, strchr(buf->data, '?') ? '&' : '?');
	append_encoded(buf, name);
	appendStringInfoChar(buf, '=');
	append_encoded(buf, value);
}

/*
 * the URL of the first (or only) page: base_url, path, fixed params,
 * pushed-down quals, page parameters; never credentials
 */
static char *
first_url(MfgFdwTable *t, List *params, int64 limit, int64 page_value)
{
	StringInfoData buf;
	ListCell   *lc;
	int			page_size = t->page_size;
	char		num[32];

	if (limit > 0 && (page_size == 0 || limit < page_size) &&
		t->paging != MFG_PAGING_NONE)
		page_size = (int) limit;

	initStringInfo(&buf);
	appendStringInfoString(&buf, t->base_url);
	appendStringInfoString(&buf, t->path);
	if (t->params)
		appendStringInfo(&buf, "%c%s", strchr(buf.data, '?') ? '&' : '?',
						 t->params);
	foreach(lc, params)
	{
		MfgFdwParam *p = (MfgFdwParam *) lfirst(lc);

		append_param(&buf, p->name, p->value);
	}
	if (t->paging == MFG_PAGING_PAGE)
	{
		snprintf(num, sizeof(num), INT64_FORMAT, page_value);
		append_param(&buf, t->page_param, num);
	}
	else if (t->paging == MFG_PAGING_OFFSET)
	{
		snprintf(num, sizeof(num), INT64_FORMAT, page_value);
		append_param(&buf, t->offset_param, num);
	}
	if (page_size > 0)
	{
		snprintf(num, sizeof(num), "%d", page_size);
		append_param(&buf, t->page_size_param, num);
	}
	return buf.data;
}

/*
 * mfgsync_fdw_first_url
 *		The first request of a scan as EXPLAIN shows it, palloc'd.
 */
char *
mfgsync_fdw_first_url(MfgFdwTable *t, List *params, int64 limit)
{
	char	   *url = first_url(t, params, limit,
								t->paging == MFG_PAGING_OFFSET ? 0 : t->first_page);

	if (t->auth == MFG_AUTH_API_KEY && t->api_key_param)
		url = psprintf("%s%c%s=***", url, strchr(url, '?') ? '&' : '?',
					   t->api_key_param);
	return url;
}

/* url without the query parameter name (a server echoing the API key) */
static char *
strip_param(const char *url, const char *name)
{
	const char *q = strchr(url, '?');
	StringInfoData buf;
	size_t		nlen = strlen(name);
	const char *p;

	if (q == NULL)
		return pstrdup(url);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, url, q - url);
	p = q + 1;
	while (*p)
	{
		const char *amp = strchr(p, '&');
		size_t		len = amp ? (size_t) (amp - p) : strlen(p);

		if (!(len >= nlen && strncmp(p, name, nlen) == 0 &&
			  (len == nlen || p[nlen] == '=')))
		{
			appendStringInfoChar(&buf, strchr(buf.data, '?') ? '&' : '?');
			appendBinaryStringInfo(&buf, p, len);
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return buf.data;
}

/* the URL shown in messages: credentials redacted */
static char *
shown_url(MfgFdwScan *s)
{
	MfgFdwTable *t = s->t;

	if (t->auth == MFG_AUTH_API_KEY && t->api_key_param)
		return psprintf("%s%c%s=***", s->url, strchr(s->url, '?') ? '&' : '?',
						t->api_key_param);
	return s->url;
}

/* libcurl hands over bytes of the answer; never raises */
static size_t
write_stream(char *data, size_t size, size_t nmemb, void *userp)
{
	MfgFdwScan *s = (MfgFdwScan *) userp;
	size_t		len = size * nmemb;

	if (!s->status_known)
	{
		curl_easy_getinfo(s->req->easy, CURLINFO_RESPONSE_CODE, &s->status);
		s->status_known = true;
	}
	if (s->status < 200 || s->status >= 300)
	{
		if (s->errbody.len < MFG_FDW_ERRBODY_MAX)
			appendBinaryStringInfo(&s->errbody, data,
								   Min(len, MFG_FDW_ERRBODY_MAX - s->errbody.len));
		return len;
	}
	if (s->page_bytes + (int64) len > (int64) s->t->http.max_response_bytes)
	{
		s->too_big = true;
		return 0;				/* aborts the transfer */
	}
	if (s->buf.len - s->pos > MFG_FDW_BUFFER_HIGH)
	{
		s->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	appendBinaryStringInfo(&s->buf, data, len);
	s->page_bytes += len;
	s->stats.bytes += len;
	return len;
}

/* reset the per-request state and start a GET of s->url */
static void
start_request(MfgFdwScan *s)
{
	MfgFdwTable *t = s->t;
	MfgHttpRequest *req;
	StringInfoData url;
	ListCell   *lc;
	MemoryContext old;

	mfgsync_fdw_limit_acquire(t);

	old = MemoryContextSwitchTo(s->cxt);
	s->status_known = false;
	s->status = 0;
	s->too_big = false;
	s->paused = false;
	s->finished = false;
	resetStringInfo(&s->buf);
	s->pos = 0;
	s->base = 0;
	s->page_bytes = 0;
	s->page_rows = 0;
	resetStringInfo(&s->errbody);
	s->mode = SPLIT_OUTER;
	s->depth = 0;
	s->in_string = s->escape = s->in_scalar = false;
	s->found_rows = false;
	resetStringInfo(&s->outer);
	resetStringInfo(&s->key);

	initStringInfo(&url);
	appendStringInfoString(&url, s->url);
	MemoryContextSwitchTo(old);

	req = mfgsync_http_request(s->http, s->url, &t->http);
	s->req = req;
	foreach(lc, t->headers)
		req->headers = curl_slist_append(req->headers, (char *) lfirst(lc));
	req->headers = curl_slist_append(req->headers, "Accept: application/json");
	mfgsync_fdw_auth_apply(t, &req->headers, &url, s->refreshed);
	curl_easy_setopt(req->easy, CURLOPT_URL, url.data);
	curl_easy_setopt(req->easy, CURLOPT_WRITEFUNCTION, write_stream);
	curl_easy_setopt(req->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(req->easy, CURLOPT_ACCEPT_ENCODING, "");
	mfgsync_http_start_get(s->http, req);
	/* the URL with a key in it is not kept */
	memset(url.data, 0, url.len);
	pfree(url.data);
	s->stats.requests++;
}

/* a printable, truncated copy of an error answer */
static char *
shown_body(const StringInfo body)
{
	int			n = Min(body->len, MFG_FDW_ERRBODY_SHOWN);
	char	   *out = palloc(n + 4);
	int			i;

	for (i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) body->data[i];

		out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
	}
	out[n] = '\0';
	/* do not end inside a UTF-8 sequence */
	while (n > 0 && ((unsigned char) out[n - 1] & 0xC0) == 0x80)
		out[--n] = '\0';
	if (n > 0 && ((unsigned char) out[n - 1] & 0xC0) == 0xC0)
		out[--n] = '\0';
	if (body->len > MFG_FDW_ERRBODY_SHOWN)
		strcat(out, "...");
	return out;
}

/* raise an error for a failed request (status or transport) */
static void
report_request_error(MfgFdwScan *s, MfgHttpRequest *req)
{
	char	   *url = shown_url(s);
	char	   *server = s->t->servername;

	if (s->too_big)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a page from server \"%s\" is larger than max_page_bytes (%zu bytes)",
						server, s->t->http.max_response_bytes),
				 errhint("Raise the table's max_page_bytes option or lower its page_size."),
				 errcontext("remote request: GET %s", url)));
	if (req->status == 0 || req->result != CURLE_OK)
		ereport(ERROR,
				(errcode(req->result == CURLE_OPERATION_TIMEDOUT ?
						 ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION :
						 ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read from server \"%s\": %s", server,
						req->error[0] ? req->error : curl_easy_strerror(req->result)),
				 s->page_bytes > 0 ?
				 errdetail("The answer broke off after %lld bytes.",
						   (long long) s->page_bytes) : 0,
				 s->attempt > 0 ? errhint("The request was retried %d times.", s->attempt) : 0,
				 errcontext("remote request: GET %s", url)));
	ereport(ERROR,
			(errcode(req->status == 401 || req->status == 403 ?
					 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION :
					 req->status == 404 ? ERRCODE_FDW_TABLE_NOT_FOUND :
					 req->status >= 500 || req->status == 429 ?
					 ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION :
					 ERRCODE_FDW_ERROR),
			 errmsg("server \"%s\" answered HTTP %ld", server, req->status),
			 s->errbody.len > 0 ?
			 errdetail("Response body: %s", shown_body(&s->errbody)) :
			 errdetail("The response body is empty."),
			 s->attempt > 0 ? errhint("The request was retried %d times.", s->attempt) : 0,
			 errcontext("remote request: GET %s", url)));
}

/* may a failed request be made again? */
static bool
retryable(MfgFdwScan *s, MfgHttpRequest *req)
{
	if (s->page_rows > 0 || s->pos > 0 || s->too_big)
		return false;			/* rows of this answer were returned */
	if (req->status == 429 || req->status == 502 || req->status == 503 ||
		req->status == 504)
		return true;
	if (req->status == 0)
		return req->result == CURLE_COULDNT_CONNECT ||
			req->result == CURLE_OPERATION_TIMEDOUT ||
			req->result == CURLE_GOT_NOTHING ||
			req->result == CURLE_RECV_ERROR ||
			req->result == CURLE_SEND_ERROR;
	return false;
}

/* the request ended; decide: retry, follow, fail or let the rows flow */
static void
request_finished(MfgFdwScan *s)
{
	MfgHttpRequest *req = s->req;
	MfgFdwTable *t = s->t;
	bool		ok = req->result == CURLE_OK && req->status >= 200 &&
		req->status < 300 && !s->too_big;

	if (ok)
	{
		s->finished = true;
		return;
	}

	if (retryable(s, req) && s->attempt < t->retries)
	{
		long		delay;

		if (req->retry_after_s >= 0)
		{
			if ((int64) req->retry_after_s * 1000 > t->max_retry_wait_ms)
				report_request_error(s, req);
			delay = req->retry_after_s * 1000L;
		}
		else
			delay = ((long) t->retry_delay_ms << Min(s->attempt, 20)) +
				(long) (random() % (t->retry_delay_ms / 4 + 1));
		s->attempt++;
		mfgsync_http_abort(s->http, req);
		s->req = NULL;
		wait_ms(delay);
		start_request(s);
		return;
	}
	if (req->status == 401 && t->auth == MFG_AUTH_OAUTH2 && !s->refreshed)
	{
		s->refreshed = true;
		mfgsync_http_abort(s->http, req);
		s->req = NULL;
		start_request(s);
		return;
	}
	if (req->status >= 300 && req->status < 400 && req->redirect_url &&
		s->redirects < MFG_FDW_MAX_REDIRECTS)
	{
		char	   *target = req->redirect_url;

		if (!mfgsync_http_same_origin(s->url, target))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("server \"%s\" redirected to another host or from https to http",
							t->servername),
					 errdetail("Credentials are only sent to the host of the server's base_url."),
					 errcontext("remote request: GET %s", shown_url(s))));
		s->url = MemoryContextStrdup(s->cxt, target);
		if (t->auth == MFG_AUTH_API_KEY && t->api_key_param)
			s->url = MemoryContextStrdup(s->cxt, strip_param(s->url, t->api_key_param));
		s->redirects++;
		mfgsync_http_abort(s->http, req);
		s->req = NULL;
		start_request(s);
		return;
	}
	report_request_error(s, req);
}

/* drive curl until bytes arrived or the request ended */
static void
pump(MfgFdwScan *s)
{
	MfgHttpRequest *done;

	if (s->paused)
	{
		s->paused = false;
		curl_easy_pause(s->req->easy, CURLPAUSE_CONT);
	}
	if (s->buf.len > s->pos)
		return;
	mfgsync_fdw_wait(s->http);
	while ((done = mfgsync_http_next_done(s->http)) != NULL)
	{
		if (done != s->req)
			elog(ERROR, "unexpected HTTP request finished");
		request_finished(s);
	}
}

/* raise "malformed JSON" at a byte offset of the page */
static void
malformed(MfgFdwScan *s, int64 offset, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("malformed JSON from server \"%s\" at byte offset %lld",
					s->t->servername, (long long) offset),
			 errdetail_internal("%s", detail),
			 errcontext("remote request: GET %s", shown_url(s))));
}

/* does a value starting now in the top frame lie on the row path? */
static bool
value_on_path(MfgFdwScan *s, int *level)
{
	SplitFrame *f;
	const MfgJsonPath *p = &s->t->rows;

	if (s->depth == 0)
	{
		*level = 0;
		return true;
	}
	f = &s->frame[s->depth - 1];
	*level = s->depth;
	if (!f->on_path || s->depth > p->n)
		return false;
	if (f->kind == '{')
		return f->key_match;
	return p->key[s->depth - 1] == NULL && p->index[s->depth - 1] == f->count;
}

/* a value of the outer document ended: update the enclosing frame */
static void
value_ended(MfgFdwScan *s)
{
	if (s->depth == 0)
		s->mode = SPLIT_DONE;
	else
		s->frame[s->depth - 1].state = FRAME_AFTER;
}

/*
 * split
 *		Advance the splitter over the received bytes.  Returns true with
 *		*start and *len set when a whole row element is in the buffer; false
 *		when more bytes are needed (or the document is complete).
 */
static bool
split(MfgFdwScan *s, int *start, int *len)
{
	char	   *data = s->buf.data;
	int			end = s->buf.len;
	int			i = s->pos;

	while (i < end)
	{
		char		c = data[i];

		if (s->mode == SPLIT_ELEMENT)
		{
			int			d = s->elem_depth;
			bool		str = s->elem_string;
			bool		esc = s->elem_escape;

			for (; i < end; i++)
			{
				c = data[i];
				if (str)
				{
					if (esc)
						esc = false;
					else if (c == '\\')
						esc = true;
					else if (c == '"')
						str = false;
				}
				else if (c == '"')
					str = true;
				else if (c == '{' || c == '[')
					d++;
				else if (c == '}' || c == ']')
				{
					if (--d == 0)
						break;
				}
			}
			s->elem_depth = d;
			s->elem_string = str;
			s->elem_escape = esc;
			if (i == end)
			{
				s->pos = i;
				return false;
			}
			/* data[i] closes the element */
			*start = s->elem_start;
			*len = i + 1 - s->elem_start;
			s->pos = i + 1;
			s->mode = SPLIT_ROWS;
			s->frame[s->depth - 1].state = FRAME_AFTER;
			return true;
		}

		if (s->mode == SPLIT_ROWS)
		{
			SplitFrame *f = &s->frame[s->depth - 1];

			i++;
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
				continue;
			if (c == ']' && f->state != FRAME_KEY)
			{
				appendStringInfoChar(&s->outer, ']');
				s->depth--;
				s->mode = SPLIT_OUTER;
				value_ended(s);
				continue;
			}
			if (c == ',' && f->state == FRAME_AFTER)
			{
				f->state = FRAME_VALUE;
				continue;
			}
			if (f->state != FRAME_AFTER && c == '{')
			{
				/*
				 * Read the row's values in place when it is all here; a
				 * row cut off by the end of the buffer is scanned for its
				 * end below (linear however big it is) and read then.
				 */
				if (s->sink)
				{
					int			used;
					int			erroff;
					const char *detail;

					switch (mfgsync_fdw_row_parse(data + i - 1, end - i + 1,
												  s->sink, &used, &erroff,
												  &detail))
					{
						case MFG_ROW_OK:
							*start = i - 1;
							*len = used;
							s->pos = i - 1 + used;
							f->state = FRAME_AFTER;
							s->row_parsed = true;
							return true;
						case MFG_ROW_MALFORMED:
							malformed(s, s->base + i - 1 + erroff, detail);
							break;
						case MFG_ROW_INCOMPLETE:
							break;
					}
				}
				s->mode = SPLIT_ELEMENT;
				s->elem_start = i - 1;
				s->elem_depth = 1;
				s->elem_string = false;
				s->elem_escape = false;
				continue;
			}
			if (f->state != FRAME_AFTER)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("row " INT64_FORMAT " from server \"%s\" is not a JSON object",
								s->rowno + 1, s->t->servername),
						 errdetail("Byte offset %lld starts with \"%c\".",
								   (long long) (s->base + i - 1), c),
						 errcontext("remote request: GET %s", shown_url(s))));
			malformed(s, s->base + i - 1, "Expected \",\" or \"]\" between rows.");
		}

		if (s->mode == SPLIT_DONE)
		{
			i++;
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
				continue;
			malformed(s, s->base + i - 1, "Data follows the end of the document.");
		}

		/* SPLIT_OUTER: one character of the document outside the rows */
		if (s->outer.len >= MFG_FDW_OUTER_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the answer of server \"%s\" has more than %d bytes outside the row array",
							s->t->servername, MFG_FDW_OUTER_MAX),
					 errhint("Check the table's \"rows\" option."),
					 errcontext("remote request: GET %s", shown_url(s))));
		i++;
		if (s->in_string)
		{
			appendStringInfoChar(&s->outer, c);
			if (s->escape)
				s->escape = false;
			else if (c == '\\')
				s->escape = true;
			else if (c == '"')
			{
				s->in_string = false;
				if (s->string_is_key)
				{
					SplitFrame *f = &s->frame[s->depth - 1];
					const MfgJsonPath *p = &s->t->rows;

					f->key_match = f->on_path && s->depth <= p->n &&
						p->key[s->depth - 1] != NULL &&
						strcmp(p->key[s->depth - 1], s->key.data) == 0;
					f->state = FRAME_COLON;
				}
				else
					value_ended(s);
			}
			else if (s->string_is_key)
				appendStringInfoChar(&s->key, c);
			continue;
		}
		if (s->in_scalar)
		{
			if (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' ||
				c == '\r' || c == '\t')
			{
				s->in_scalar = false;
				value_ended(s);
				i--;			/* look at c again */
				continue;
			}
			appendStringInfoChar(&s->outer, c);
			continue;
		}
		appendStringInfoChar(&s->outer, c);
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (s->depth > 0)
		{
			SplitFrame *f = &s->frame[s->depth - 1];

			if (f->state == FRAME_KEY && f->kind == '{')
			{
				if (c == '}')
				{
					s->depth--;
					value_ended(s);
				}
				else if (c == '"')
				{
					s->in_string = true;
					s->string_is_key = true;
					resetStringInfo(&s->key);
				}
				else
					malformed(s, s->base + i - 1, "Expected a key.");
				continue;
			}
			if (f->state == FRAME_COLON)
			{
				if (c != ':')
					malformed(s, s->base + i - 1, "Expected \":\" after a key.");
				f->state = FRAME_VALUE;
				continue;
			}
			if (f->state == FRAME_AFTER)
			{
				if (c == ',')
				{
					f->state = f->kind == '{' ? FRAME_KEY : FRAME_VALUE;
					if (f->kind == '[')
						f->count++;
				}
				else if ((c == '}' && f->kind == '{') || (c == ']' && f->kind == '['))
				{
					s->depth--;
					value_ended(s);
				}
				else
					malformed(s, s->base + i - 1, "Expected \",\" or the end of a container.");
				continue;
			}
			if (c == ']' && f->kind == '[' && f->count == 0)
			{
				s->depth--;
				value_ended(s);
				continue;
			}
		}

		/* a value starts */
		{
			int			level;
			bool		on = value_on_path(s, &level);
			const MfgJsonPath *p = &s->t->rows;

			if (on && level == p->n)
			{
				if (c != '[')
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
							 errmsg("the answer of server \"%s\" has no row array at \"%s\"",
									s->t->servername, p->text),
							 errdetail("The value there starts with \"%c\".", c),
							 errcontext("remote request: GET %s", shown_url(s))));
				if (s->depth == MFG_FDW_MAX_DEPTH)
					malformed(s, s->base + i - 1, "Nesting is too deep.");
				s->frame[s->depth].kind = '[';
				s->frame[s->depth].state = FRAME_VALUE;
				s->frame[s->depth].on_path = false;
				s->frame[s->depth].count = 0;
				s->depth++;
				s->found_rows = true;
				s->mode = SPLIT_ROWS;
				continue;
			}
			if (c == '{' || c == '[')
			{
				if (s->depth == MFG_FDW_MAX_DEPTH)
					malformed(s, s->base + i - 1, "Nesting is too deep.");
				s->frame[s->depth].kind = c;
				s->frame[s->depth].state = c == '{' ? FRAME_KEY : FRAME_VALUE;
				s->frame[s->depth].on_path = on;
				s->frame[s->depth].count = 0;
				s->frame[s->depth].key_match = false;
				s->depth++;
			}
			else if (c == '"')
			{
				s->in_string = true;
				s->string_is_key = false;
			}
			else if (c == '}' || c == ']' || c == ',' || c == ':')
				malformed(s, s->base + i - 1, "Expected a value.");
			else
				s->in_scalar = true;
		}
	}
	s->pos = i;
	return false;
}

/* drop consumed bytes from the buffer (keeping a partial element) */
static void
compact(MfgFdwScan *s)
{
	int			keep = s->mode == SPLIT_ELEMENT ? s->elem_start : s->pos;

	if (keep == 0)
		return;
	if (keep == s->buf.len)
	{
		s->buf.len = 0;
		s->buf.data[0] = '\0';
	}
	else if (keep > 65536 && keep > s->buf.len / 2)
	{
		memmove(s->buf.data, s->buf.data + keep, s->buf.len - keep);
		s->buf.len -= keep;
		s->buf.data[s->buf.len] = '\0';
	}
	else
		return;
	s->base += keep;
	s->pos -= keep;
	if (s->mode == SPLIT_ELEMENT)
		s->elem_start -= keep;
}

/* loop detection: was this cursor or URL seen in this scan? */
static bool
seen_before(MfgFdwScan *s, const char *value)
{
	uint64		h = hash_bytes_extended((const unsigned char *) value,
										strlen(value), 0);
	int			i;

	for (i = 0; i < s->nseen; i++)
		if (s->seen[i] == h)
			return true;
	if (s->nseen == s->maxseen)
	{
		s->maxseen = s->maxseen ? s->maxseen * 2 : 64;
		s->seen = s->seen ?
			repalloc(s->seen, sizeof(uint64) * s->maxseen) :
			MemoryContextAlloc(s->cxt, sizeof(uint64) * s->maxseen);
	}
	s->seen[s->nseen++] = h;
	return false;
}

/* the rel="next" target of the answer's Link headers, or NULL */
static char *
link_next(MfgHttpRequest *req)
{
	struct curl_header *h;
	size_t		n = 0;
	size_t		idx;

	if (curl_easy_header(req->easy, "Link", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	n = h->amount;
	for (idx = 0; idx < n; idx++)
	{
		const char *p;

		if (curl_easy_header(req->easy, "Link", idx, CURLH_HEADER, -1, &h) != CURLHE_OK)
			break;
		p = h->value;
		/* link-value: <uri> *( ; param ), separated by commas */
		while ((p = strchr(p, '<')) != NULL)
		{
			const char *gt = strchr(p, '>');
			const char *next_link;
			const char *params;

			if (gt == NULL)
				break;
			params = gt + 1;
			next_link = strchr(params, '<');
			{
				char	   *ps = next_link ? pnstrdup(params, next_link - params) :
					pstrdup(params);
				char	   *r = strstr(ps, "rel=");
				bool		is_next = false;

				if (r)
				{
					r += 4;
					if (*r == '"')
						r++;
					/* rel may hold several space-separated types */
					while (*r && *r != '"' && *r != ';' && *r != ',')
					{
						if (pg_strncasecmp(r, "next", 4) == 0 &&
							(r[4] == '"' || r[4] == ' ' || r[4] == ';' ||
							 r[4] == ',' || r[4] == '\0'))
							is_next = true;
						while (*r && *r != ' ' && *r != '"' && *r != ';' && *r != ',')
							r++;
						while (*r == ' ')
							r++;
					}
				}
				if (is_next)
					return pnstrdup(p + 1, gt - p - 1);
			}
			p = gt;
		}
	}
	return NULL;
}

/* resolve target against base; NULL when curl cannot */
static char *
resolve_url(const char *base, const char *target)
{
	CURLU	   *u = curl_url();
	char	   *out = NULL;
	char	   *res = NULL;

	if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
		curl_url_set(u, CURLUPART_URL, target, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK)
	{
		res = pstrdup(out);
		curl_free(out);
	}
	curl_url_cleanup(u);
	return res;
}

/*
 * mfgsync_fdw_json_get
 *		The value at path inside obj (borrowed, not to be put), or NULL.
 */
struct json_object *
mfgsync_fdw_json_get(struct json_object *obj, const MfgJsonPath *path)
{
	int			i;

	for (i = 0; i < path->n && obj != NULL; i++)
	{
		if (path->key[i] != NULL)
		{
			if (!json_object_is_type(obj, json_type_object) ||
				!json_object_object_get_ex(obj, path->key[i], &obj))
				return NULL;
		}
		else
		{
			if (!json_object_is_type(obj, json_type_array) ||
				path->index[i] >= (int) json_object_array_length(obj))
				return NULL;
			obj = json_object_array_get_idx(obj, path->index[i]);
		}
	}
	return obj;
}

/* the page is read: work out the next one, or that there is none */
static void
page_done(MfgFdwScan *s)
{
	MfgFdwTable *t = s->t;
	MfgHttpRequest *req = s->req;
	char	   *next = NULL;
	bool		more = false;

	if (s->mode != SPLIT_DONE)
		malformed(s, s->base + s->buf.len,
				  s->buf.len == 0 && s->base == 0 ? "The answer is empty." :
				  "The answer ended before the JSON document did.");
	if (!s->found_rows)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("the answer of server \"%s\" has no row array at \"%s\"",
						t->servername, t->rows.text),
				 errcontext("remote request: GET %s", shown_url(s))));
	s->stats.pages++;

	switch (t->paging)
	{
		case MFG_PAGING_NONE:
			break;
		case MFG_PAGING_PAGE:
		case MFG_PAGING_OFFSET:
			more = s->page_rows > 0 &&
				(t->page_size == 0 || s->page_rows >= t->page_size ||
				 (s->limit > 0 && s->page_rows >= s->limit));
			if (t->paging == MFG_PAGING_PAGE)
				s->page_value++;
			else
				s->page_value += s->page_rows;
			break;
		case MFG_PAGING_CURSOR:
		case MFG_PAGING_NEXT_URL:
			{
				struct json_tokener *tok = json_tokener_new();
				struct json_object *doc;
				struct json_object *v;

				doc = json_tokener_parse_ex(tok, s->outer.data, s->outer.len);
				if (doc == NULL)
				{
					enum json_tokener_error e = json_tokener_get_error(tok);

					json_tokener_free(tok);
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
							 errmsg("malformed JSON from server \"%s\" outside the row array",
									t->servername),
							 errdetail_internal("%s", json_tokener_error_desc(e)),
							 errcontext("remote request: GET %s", shown_url(s))));
				}
				json_tokener_free(tok);
				v = mfgsync_fdw_json_get(doc,
										 t->paging == MFG_PAGING_CURSOR ?
										 &t->cursor_path : &t->next_url_path);
				if (v && !json_object_is_type(v, json_type_null) &&
					!json_object_is_type(v, json_type_boolean))
				{
					const char *str = json_object_get_string(v);

					if (str && str[0])
						next = pstrdup(str);
				}
				json_object_put(doc);
				if (next && t->paging == MFG_PAGING_CURSOR)
				{
					if (seen_before(s, next))
						ereport(ERROR,
								(errcode(ERRCODE_FDW_ERROR),
								 errmsg("server \"%s\" returned the cursor of an earlier page again",
										t->servername),
								 errdetail("Paging would not end."),
								 errcontext("remote request: GET %s", shown_url(s))));
					{
						char	   *base = first_url(t, s->params, s->limit, 0);
						StringInfoData b;

						initStringInfo(&b);
						appendStringInfoString(&b, base);
						append_param(&b, t->cursor_param, next);
						next = b.data;
					}
				}
			}
			break;
		case MFG_PAGING_LINK:
			next = link_next(req);
			break;
	}

	if (next && (t->paging == MFG_PAGING_NEXT_URL || t->paging == MFG_PAGING_LINK))
	{
		char	   *abs = resolve_url(s->url, next);

		if (abs == NULL || !mfgsync_http_same_origin(s->url, abs))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("server \"%s\" named a next page on another host or not over http(s)",
							t->servername),
					 errdetail("Credentials are only sent to the host of the server's base_url."),
					 errcontext("remote request: GET %s", shown_url(s))));
		if (t->auth == MFG_AUTH_API_KEY && t->api_key_param)
			abs = strip_param(abs, t->api_key_param);
		if (seen_before(s, abs))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("server \"%s\" named the URL of an earlier page as the next page",
							t->servername),
					 errdetail("Paging would not end."),
					 errcontext("remote request: GET %s", shown_url(s))));
		next = abs;
	}
	if (next)
		more = true;
	if (s->limit > 0 && s->stats.rows >= s->limit)
		more = false;

	mfgsync_http_free(s->http, req);
	s->req = NULL;

	if (!more)
	{
		s->exhausted = true;
		return;
	}
	if (s->stats.pages >= t->max_pages)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("scan of server \"%s\" reached max_pages (%d) with more pages to read",
						t->servername, t->max_pages),
				 errhint("Raise the table's max_pages option, or narrow the query.")));
	if (next)
		s->url = MemoryContextStrdup(s->cxt, next);
	else
		s->url = MemoryContextStrdup(s->cxt,
									 first_url(t, s->params, s->limit, s->page_value));
	s->attempt = 0;
	s->redirects = 0;
	s->refreshed = false;
	start_request(s);
}

/*
 * mfgsync_fdw_scan_create
 *		A scan of table t whose state lives in cxt (a context the caller
 *		deletes or resets to end it; a running request is stopped then).
 */
MfgFdwScan *
mfgsync_fdw_scan_create(MfgFdwTable *t, MemoryContext cxt)
{
	MfgFdwScan *s = MemoryContextAllocZero(cxt, sizeof(MfgFdwScan));
	MemoryContextCallback *cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	MemoryContext old = MemoryContextSwitchTo(cxt);

	s->t = t;
	s->cxt = cxt;
	s->http = mfgsync_fdw_http();
	initStringInfo(&s->buf);
	initStringInfo(&s->errbody);
	initStringInfo(&s->outer);
	initStringInfo(&s->key);
	s->exhausted = true;
	MemoryContextSwitchTo(old);

	s->tok = json_tokener_new();
	if (s->tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	cb->func = scan_cleanup;
	cb->arg = s;
	MemoryContextRegisterResetCallback(cxt, cb);
	return s;
}

/*
 * mfgsync_fdw_scan_start
 *		(Re)start the scan at the first page with the given pushed-down
 *		parameters (MfgFdwParam, copied) and row limit (-1: none).
 */
void
mfgsync_fdw_scan_start(MfgFdwScan *s, List *params, int64 limit)
{
	MemoryContext old;
	ListCell   *lc;

	if (s->req)
		mfgsync_http_abort(s->http, s->req);
	s->req = NULL;
	if (s->row)
		json_object_put(s->row);
	s->row = NULL;

	old = MemoryContextSwitchTo(s->cxt);
	s->params = NIL;
	foreach(lc, params)
	{
		MfgFdwParam *p = palloc(sizeof(MfgFdwParam));

		p->name = pstrdup(((MfgFdwParam *) lfirst(lc))->name);
		p->value = pstrdup(((MfgFdwParam *) lfirst(lc))->value);
		s->params = lappend(s->params, p);
	}
	s->limit = limit;
	s->page_value = s->t->paging == MFG_PAGING_OFFSET ? 0 : s->t->first_page;
	s->url = first_url(s->t, s->params, limit, s->page_value);
	s->nseen = 0;
	MemoryContextSwitchTo(old);

	s->rowno = 0;
	s->stats.rows = 0;
	s->exhausted = false;
	s->attempt = 0;
	s->redirects = 0;
	s->refreshed = false;
	(void) seen_before(s, s->url);
	start_request(s);
}

/*
 * next_element
 *		The next row as the bytes of one JSON element, *len bytes at *row
 *		(not NUL-terminated, valid until the next call), with its 1-based
 *		number in *rowno; false at the end.  Raises an error for any
 *		failure of the remote API.
 */
static bool
next_element(MfgFdwScan *s, const char **row, int *len, int64 *rowno)
{
	int			start;

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (s->exhausted)
			return false;
		if (s->req == NULL)
			elog(ERROR, "mfgsync_http scan has no request");
		/* the last row returned is consumed: its bytes may go */
		compact(s);
		if (s->status_known && s->status >= 200 && s->status < 300 &&
			split(s, &start, len))
		{
			*row = s->buf.data + start;
			s->row_offset = s->base + start;
			s->page_rows++;
			s->stats.rows++;
			*rowno = ++s->rowno;
			return true;
		}
		if (s->finished)
		{
			/* every byte is split: the page is done */
			page_done(s);
			continue;
		}
		pump(s);
	}
}

/*
 * mfgsync_fdw_scan_next_row
 *		Read the next row into sink: the spans of its columns' values (in
 *		the scan's buffer, valid until the next call), its 1-based number
 *		in *rowno; false at the end.  A malformed row raises an error with
 *		its byte offset in the page, as does any failure of the remote API.
 */
bool
mfgsync_fdw_scan_next_row(MfgFdwScan *s, MfgFdwRowSink *sink, int64 *rowno)
{
	const char *row;
	int			len;
	int			erroff;
	const char *detail;
	bool		found;

	s->sink = sink;
	s->row_parsed = false;
	found = next_element(s, &row, &len, rowno);
	if (found && !s->row_parsed &&
		mfgsync_fdw_row_parse(row, len, sink, NULL, &erroff, &detail) != MFG_ROW_OK)
		malformed(s, s->row_offset + erroff, detail);
	return found;
}

/*
 * mfgsync_fdw_scan_next
 *		The next row as a json-c object owned by the scan (valid until the
 *		next call), with its 1-based number in *rowno; NULL at the end.
 *		Raises an error for any failure of the remote API.
 */
struct json_object *
mfgsync_fdw_scan_next(MfgFdwScan *s, int64 *rowno)
{
	const char *data;
	int			len;
	struct json_object *row;
	enum json_tokener_error e;

	if (s->row)
	{
		json_object_put(s->row);
		s->row = NULL;
	}
	s->sink = NULL;
	if (!next_element(s, &data, &len, rowno))
		return NULL;
	json_tokener_reset(s->tok);
	row = json_tokener_parse_ex(s->tok, data, len);
	e = json_tokener_get_error(s->tok);
	if (row == NULL || e != json_tokener_success ||
		json_tokener_get_parse_end(s->tok) != (size_t) len)
	{
		if (row)
			json_object_put(row);
		malformed(s, s->row_offset + (int64) json_tokener_get_parse_end(s->tok),
				  e == json_tokener_success ? "Unexpected data in a row." :
				  json_tokener_error_desc(e));
	}
	s->row = row;
	return row;
}

/*
 * mfgsync_fdw_scan_stats
 *		Pages, requests, bytes and rows of the scan so far.
 */
void
mfgsync_fdw_scan_stats(MfgFdwScan *s, MfgFdwStats *stats)
{
	*stats = s->stats;
}
