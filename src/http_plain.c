/*-------------------------------------------------------------------------
 *
 * http_plain.c
 *		  HTTP/1.1 POST over kept-alive TCP connections, for http:// URLs
 *
 * A sender posting one event per request spends most of its time in the
 * HTTP client.  For http:// URLs this small client does what libcurl
 * does for us there, with less work per request: each request is
 * written with one send() on an idle connection to the same host and
 * port, the answer read with one recv() in the common case, and the
 * connections stay in one WaitEventSet that is rebuilt only when a
 * connection opens or closes.  https:// and everything else stays with
 * libcurl (http.c).
 *
 * Same rules as libcurl's side: no proxy, no redirects followed here
 * (the Location is handed to the caller), a total and a connect timeout
 * per request, at most max_response_bytes of the answer kept (a longer
 * answer closes the connection).  Host names are resolved with
 * getaddrinfo_a(), so a slow DNS server delays only the requests that
 * need it.  A request sent on a kept-alive connection that the server
 * closed meanwhile is sent once more on a new connection, as libcurl
 * does; receivers deduplicate on the event id.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_plain.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "http_plain.h"
#include "mfgsync.h"

/* a server's header section larger than this is refused */
#define PLAIN_MAX_HEAD_BYTES	(64 * 1024)
/* an idle connection is closed after this long */
#define PLAIN_IDLE_MS			60000
/* while a name is being resolved, look every this many ms */
#define PLAIN_RESOLVE_POLL_MS	5
/* lookups abandoned to getaddrinfo_a are reaped at this pace */
#define PLAIN_ZOMBIE_POLL_MS	1000
/* a kept-alive connection idle this long is checked before reuse */
#define PLAIN_CHECK_IDLE_MS		1000
/* longest chunk-size line */
#define PLAIN_MAX_LINE_BYTES	8192
#define PLAIN_READ_BYTES		16384

typedef enum ConnState
{
	CONN_RESOLVING,
	CONN_CONNECTING,
	CONN_SENDING,
	CONN_RECEIVING,
	CONN_IDLE
} ConnState;

/* where the answer's parser is */
typedef enum ReadPhase
{
	READ_HEAD,
	READ_LENGTH,				/* a body of Content-Length bytes */
	READ_UNTIL_CLOSE,			/* a body without length */
	READ_CHUNK_SIZE,
	READ_CHUNK_DATA,
	READ_CHUNK_END,				/* the CRLF after a chunk */
	READ_TRAILER
} ReadPhase;

typedef struct Resolve
{
	struct gaicb gai;
	struct addrinfo hints;
	char	   *host;
	char	   *port;
} Resolve;

typedef struct PlainConn
{
	dlist_node	node;
	char	   *origin;			/* host:port, what connections are kept for */
	pgsocket	fd;
	ConnState	state;
	int			pos;			/* in the wait set; -1: not in it */
	uint32		events;			/* registered there */
	bool		reused;			/* served a request before this one */
	TimestampTz idle_since;
	TimestampTz connect_deadline;

	Resolve    *resolve;		/* while CONN_RESOLVING (malloc'd) */
	struct addrinfo *addrs;		/* resolved, freed once connected */
	struct addrinfo *next_addr; /* the address being tried */
	int			connect_errno;

	MfgHttpRequest *req;
	StringInfoData out;
	int			out_sent;
	StringInfoData in;
	int			in_used;		/* bytes of in already parsed */
	int			scanned;		/* of the head being read, bytes searched */
	int64		received;		/* bytes of answer to this request */
	int			head_bytes;		/* of heads and trailers of this answer */
	ReadPhase	phase;
	int64		remaining;		/* of a body or chunk */
	bool		close_after;	/* the server wants the connection closed */
	bool		got_head;
	char	   *location;
	char	   *retry_after;
} PlainConn;

/* a parsed http:// URL, kept while the next request goes to the same */
typedef struct PlainTarget
{
	char	   *url;
	char	   *origin;			/* host:port, what connections are kept for */
	char	   *host_header;	/* host, with :port unless it is 80 */
	char	   *host;			/* without IPv6 brackets */
	char	   *port;
	char	   *path;			/* with the query */
} PlainTarget;

struct MfgPlain
{
	MemoryContext cxt;
	dlist_head	conns;
	int			nconns;
	List	   *done;
	List	   *zombies;		/* Resolve that getaddrinfo_a still owns */
	WaitEventSet *set;
	bool		set_stale;
	PlainTarget target;
};

static void conn_close(MfgPlain *plain, PlainConn *conn);
static void conn_send(MfgPlain *plain, PlainConn *conn);
static void conn_connect(MfgPlain *plain, PlainConn *conn);
static void start(MfgPlain *plain, MfgHttpRequest *req, bool fresh);

MfgPlain *
mfgsync_plain_create(MemoryContext cxt)
{
	MfgPlain   *plain = MemoryContextAllocZero(cxt, sizeof(MfgPlain));

	plain->cxt = cxt;
	dlist_init(&plain->conns);
	plain->set_stale = true;
	return plain;
}

/*
 * mfgsync_plain_accepts
 *		Is url one this client handles (http://, no user name), and if so
 *		remember its parts for the next mfgsync_plain_start()?
 */
bool
mfgsync_plain_accepts(MfgPlain *plain, const char *url)
{
	PlainTarget *t = &plain->target;
	CURLU	   *u;
	char	   *scheme = NULL,
			   *user = NULL,
			   *host = NULL,
			   *port = NULL,
			   *path = NULL,
			   *query = NULL;
	bool		ok;

	if (t->url != NULL && strcmp(t->url, url) == 0)
		return true;
	if (pg_strncasecmp(url, "http://", 7) != 0)
		return false;

	u = curl_url();
	ok = u != NULL &&
		curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		strcmp(scheme, "http") == 0 &&
		curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
	if (ok)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(plain->cxt);
		size_t		hostlen = strlen(host);

		if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
			query = NULL;
		if (t->url != NULL)
		{
			pfree(t->url);
			pfree(t->origin);
			pfree(t->host_header);
			pfree(t->host);
			pfree(t->port);
			pfree(t->path);
		}
		t->url = pstrdup(url);
		t->origin = psprintf("%s:%s", host, port);
		t->host_header = strcmp(port, "80") == 0 ? pstrdup(host) : pstrdup(t->origin);
		if (hostlen > 2 && host[0] == '[' && host[hostlen - 1] == ']')
			t->host = pnstrdup(host + 1, hostlen - 2);
		else
			t->host = pstrdup(host);
		t->port = pstrdup(port);
		t->path = psprintf("%s%s%s", path, query ? "?" : "", query ? query : "");
		MemoryContextSwitchTo(oldcxt);
	}
	curl_free(scheme);
	curl_free(user);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return ok;
}

/* ---------------------------------------------------------------------
 * The wait set
 * ---------------------------------------------------------------------
 */

/* what conn waits for: writable while connecting or sending */
static uint32
conn_events(PlainConn *conn)
{
	return conn->state == CONN_CONNECTING || conn->state == CONN_SENDING ?
		WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE;
}

static void
conn_watch(MfgPlain *plain, PlainConn *conn)
{
	uint32		events = conn_events(conn);

	if (conn->fd == PGINVALID_SOCKET || events == conn->events)
		return;
	conn->events = events;
	if (conn->pos < 0 || plain->set_stale)
		plain->set_stale = true;
	else
		ModifyWaitEvent(plain->set, conn->pos, events, NULL);
}

/* how many sockets the connections may add to a wait set */
int
mfgsync_plain_nsockets(MfgPlain *plain)
{
	return plain->nconns;
}

/*
 * mfgsync_plain_wait_set
 *		The latch, postmaster death and every connection; rebuilt when
 *		connections came or went.
 */
WaitEventSet *
mfgsync_plain_wait_set(MfgPlain *plain)
{
	dlist_iter	it;

	if (!plain->set_stale)
		return plain->set;
	if (plain->set != NULL)
		FreeWaitEventSet(plain->set);
	plain->set = CreateWaitEventSet(plain->cxt, 2 + plain->nconns);
	AddWaitEventToSet(plain->set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(plain->set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
						  NULL, NULL);
	dlist_foreach(it, &plain->conns)
	{
		PlainConn  *conn = dlist_container(PlainConn, node, it.cur);

		conn->pos = -1;
		if (conn->fd == PGINVALID_SOCKET)
			continue;
		conn->events = conn_events(conn);
		conn->pos = AddWaitEventToSet(plain->set, conn->events, conn->fd,
									  NULL, conn);
	}
	plain->set_stale = false;
	return plain->set;
}

/* add the connections to a set of the caller's (libcurl's sockets too) */
void
mfgsync_plain_add_sockets(MfgPlain *plain, WaitEventSet *set)
{
	dlist_iter	it;

	dlist_foreach(it, &plain->conns)
	{
		PlainConn  *conn = dlist_container(PlainConn, node, it.cur);

		if (conn->fd != PGINVALID_SOCKET)
			AddWaitEventToSet(set, conn_events(conn), conn->fd, NULL, conn);
	}
}

/* ---------------------------------------------------------------------
 * Outcomes
 * ---------------------------------------------------------------------
 */

static void
finish(MfgPlain *plain, MfgHttpRequest *req)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(plain->cxt);

	req->conn = NULL;
	req->latency_ms = (double) (GetCurrentTimestamp() - req->started) / 1000.0;
	if (req->error[0] == '\0' && req->result != CURLE_OK)
		strlcpy(req->error, curl_easy_strerror(req->result), CURL_ERROR_SIZE);
	plain->done = lappend(plain->done, req);
	MemoryContextSwitchTo(oldcxt);
}

/* the request on conn failed before a complete answer; conn is closed */
static void
fail(MfgPlain *plain, PlainConn *conn, CURLcode result, const char *fmt,...)
	pg_attribute_printf(4, 5);

static void
fail(MfgPlain *plain, PlainConn *conn, CURLcode result, const char *fmt,...)
{
	MfgHttpRequest *req = conn->req;
	va_list		ap;

	/* the message first: its arguments may be conn's */
	if (req != NULL)
	{
		va_start(ap, fmt);
		vsnprintf(req->error, CURL_ERROR_SIZE, fmt, ap);
		va_end(ap);
		req->result = result;
		req->status = 0;
	}
	conn->req = NULL;
	conn_close(plain, conn);
	if (req != NULL)
		finish(plain, req);
}

/*
 * The request on a kept-alive connection found it closed by the server
 * before any answer: send it once more on a new connection.
 */
static bool
resend(MfgPlain *plain, PlainConn *conn)
{
	MfgHttpRequest *req = conn->req;

	if (!conn->reused || conn->received > 0 || req == NULL || req->resent)
		return false;
	req->resent = true;
	conn->req = NULL;
	conn_close(plain, conn);
	start(plain, req, true);
	return true;
}

/* the answer is complete: hand it over, keep the connection if we may */
static void
answered(MfgPlain *plain, PlainConn *conn)
{
	MfgHttpRequest *req = conn->req;

	conn->req = NULL;
	if (req->status >= 300 && req->status < 400 && conn->location != NULL)
	{
		/* the Location, made absolute against the request's URL */
		CURLU	   *u = curl_url();
		char	   *url = NULL;

		if (u != NULL &&
			curl_url_set(u, CURLUPART_URL, req->url, 0) == CURLUE_OK &&
			curl_url_set(u, CURLUPART_URL, conn->location, 0) == CURLUE_OK &&
			curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK)
			req->redirect_url = MemoryContextStrdup(plain->cxt, url);
		curl_free(url);
		curl_url_cleanup(u);
	}
	if ((req->status == 429 || req->status == 503) && conn->retry_after != NULL)
		req->retry_after_s = mfgsync_http_retry_after(conn->retry_after);

	if (conn->close_after || conn->in_used < conn->in.len)
		conn_close(plain, conn);
	else
	{
		conn->state = CONN_IDLE;
		conn->reused = true;
		conn->idle_since = GetCurrentTimestamp();
		conn_watch(plain, conn);
	}
	finish(plain, req);
}

/* ---------------------------------------------------------------------
 * Connections
 * ---------------------------------------------------------------------
 */

static void
free_addrs(PlainConn *conn)
{
	if (conn->addrs != NULL)
		freeaddrinfo(conn->addrs);
	conn->addrs = NULL;
	conn->next_addr = NULL;
}

static void
free_resolve(Resolve *r)
{
	free(r->host);
	free(r->port);
	free(r);
}

static void
conn_close(MfgPlain *plain, PlainConn *conn)
{
	if (conn->fd != PGINVALID_SOCKET)
	{
		closesocket(conn->fd);
		plain->set_stale = true;
	}
	if (conn->resolve != NULL)
	{
		/* getaddrinfo_a may still write into it */
		if (gai_cancel(&conn->resolve->gai) == EAI_NOTCANCELED)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(plain->cxt);

			plain->zombies = lappend(plain->zombies, conn->resolve);
			MemoryContextSwitchTo(oldcxt);
		}
		else
		{
			if (conn->resolve->gai.ar_result != NULL)
				freeaddrinfo(conn->resolve->gai.ar_result);
			free_resolve(conn->resolve);
		}
	}
	free_addrs(conn);
	dlist_delete(&conn->node);
	plain->nconns--;
	pfree(conn->origin);
	pfree(conn->out.data);
	pfree(conn->in.data);
	if (conn->location)
		pfree(conn->location);
	if (conn->retry_after)
		pfree(conn->retry_after);
	pfree(conn);
}

/* start resolving the target's host; numeric addresses right away */
static void
conn_resolve(MfgPlain *plain, PlainConn *conn, PlainTarget *t)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	Resolve    *r;
	struct gaicb *list[1];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(t->host, t->port, &hints, &res) == 0)
	{
		conn->addrs = res;
		conn->next_addr = res;
		conn_connect(plain, conn);
		return;
	}

	r = malloc(sizeof(Resolve));
	if (r == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	memset(r, 0, sizeof(Resolve));
	r->host = strdup(t->host);
	r->port = strdup(t->port);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	r->gai.ar_name = r->host;
	r->gai.ar_service = r->port;
	r->gai.ar_request = &r->hints;
	conn->resolve = r;
	conn->state = CONN_RESOLVING;
	list[0] = &r->gai;
	if (r->host == NULL || r->port == NULL ||
		getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0)
	{
		conn->resolve = NULL;
		free_resolve(r);
		fail(plain, conn, CURLE_COULDNT_RESOLVE_HOST,
			 "Could not resolve host: %s", t->host);
	}
}

/* has the name been resolved?  then connect */
static void
conn_check_resolved(MfgPlain *plain, PlainConn *conn)
{
	Resolve    *r = conn->resolve;
	int			rc = gai_error(&r->gai);

	if (rc == EAI_INPROGRESS)
		return;
	conn->resolve = NULL;
	if (rc != 0)
	{
		if (r->gai.ar_result != NULL)
			freeaddrinfo(r->gai.ar_result);
		fail(plain, conn, CURLE_COULDNT_RESOLVE_HOST,
			 "Could not resolve host: %s (%s)", r->host, gai_strerror(rc));
		free_resolve(r);
		return;
	}
	conn->addrs = r->gai.ar_result;
	conn->next_addr = conn->addrs;
	free_resolve(r);
	conn_connect(plain, conn);
}

/* connect to the next address; fails the request when none is left */
static void
conn_connect(MfgPlain *plain, PlainConn *conn)
{
	for (; conn->next_addr != NULL; conn->next_addr = conn->next_addr->ai_next)
	{
		struct addrinfo *a = conn->next_addr;
		int			one = 1;
		pgsocket	fd;

		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
		{
			conn->connect_errno = errno;
			continue;
		}
		(void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void) setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)
		{
			conn->fd = fd;
			conn->state = CONN_CONNECTING;
			plain->set_stale = true;
			return;
		}
		conn->connect_errno = errno;
		closesocket(fd);
	}
	fail(plain, conn, CURLE_COULDNT_CONNECT, "Failed to connect to %s: %s",
		 conn->origin, strerror(conn->connect_errno));
}

/* the connection attempt finished: send, or try the next address */
static void
conn_connected(MfgPlain *plain, PlainConn *conn)
{
	int			err = 0;
	socklen_t	len = sizeof(err);

	if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0)
	{
		conn->connect_errno = err;
		closesocket(conn->fd);
		conn->fd = PGINVALID_SOCKET;
		plain->set_stale = true;
		conn->next_addr = conn->next_addr->ai_next;
		conn_connect(plain, conn);
		return;
	}
	free_addrs(conn);
	conn->state = CONN_SENDING;
	conn_send(plain, conn);
}

/* ---------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------
 */

/*
 * mfgsync_plain_start
 *		Send req (a POST to req->url, which mfgsync_plain_accepts()) on an
 *		idle connection to its host, or on a new one.
 */
void
mfgsync_plain_start(MfgPlain *plain, MfgHttpRequest *req)
{
	start(plain, req, false);
}

/* is there a "name:" line among headers? */
static bool
has_header(struct curl_slist *headers, const char *name)
{
	size_t		len = strlen(name);

	for (; headers != NULL; headers = headers->next)
		if (pg_strncasecmp(headers->data, name, len) == 0 && headers->data[len] == ':')
			return true;
	return false;
}

/*
 * May a kept-alive connection be reused?  One that has been idle for a
 * while may have been closed by the server (idle timeout) or carry an
 * answer nobody asked for (408) that the wait has not seen yet.
 */
static bool
conn_still_open(PlainConn *conn, TimestampTz now)
{
	char		b;

	if (now < TimestampTzPlusMilliseconds(conn->idle_since, PLAIN_CHECK_IDLE_MS))
		return true;
	return recv(conn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
		(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* fresh: on a new connection, not a kept-alive one */
static void
start(MfgPlain *plain, MfgHttpRequest *req, bool fresh)
{
	PlainTarget *t = &plain->target;
	PlainConn  *conn = NULL;
	struct curl_slist *h;
	dlist_mutable_iter it;
	TimestampTz now = GetCurrentTimestamp();

	if (!mfgsync_plain_accepts(plain, req->url))
		elog(ERROR, "mfgsync_plain_start called for an URL it does not accept");

	dlist_foreach_modify(it, &plain->conns)
	{
		PlainConn  *c = dlist_container(PlainConn, node, it.cur);

		if (fresh || c->state != CONN_IDLE || strcmp(c->origin, t->origin) != 0)
			continue;
		if (!conn_still_open(c, now))
		{
			conn_close(plain, c);
			continue;
		}
		conn = c;
		break;
	}
	if (conn == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(plain->cxt);

		conn = palloc0(sizeof(PlainConn));
		conn->origin = pstrdup(t->origin);
		conn->fd = PGINVALID_SOCKET;
		conn->pos = -1;
		conn->state = CONN_RESOLVING;
		initStringInfo(&conn->out);
		initStringInfo(&conn->in);
		MemoryContextSwitchTo(oldcxt);
		dlist_push_head(&plain->conns, &conn->node);
		plain->nconns++;
	}
	else
	{
		/* most recently used first: the others may expire */
		dlist_move_head(&plain->conns, &conn->node);
	}

	conn->req = req;
	req->conn = conn;
	conn->in.len = 0;
	conn->in_used = 0;
	conn->scanned = 0;
	conn->received = 0;
	conn->head_bytes = 0;
	conn->phase = READ_HEAD;
	conn->got_head = false;
	conn->close_after = false;
	if (conn->location)
		pfree(conn->location);
	if (conn->retry_after)
		pfree(conn->retry_after);
	conn->location = NULL;
	conn->retry_after = NULL;

	/* the whole request in one buffer, for one send() */
	resetStringInfo(&conn->out);
	conn->out_sent = 0;
	appendStringInfo(&conn->out, "POST %s HTTP/1.1\r\nHost: %s\r\n", t->path, t->host_header);
	/* defaults, unless the endpoint sets them (as libcurl does) */
	if (!has_header(req->headers, "user-agent"))
		appendStringInfoString(&conn->out, "User-Agent: mfgsync/" MFGSYNC_VERSION "\r\n");
	if (!has_header(req->headers, "accept"))
		appendStringInfoString(&conn->out, "Accept: */*\r\n");
	for (h = req->headers; h != NULL; h = h->next)
	{
		const char *colon = strchr(h->data, ':');

		/* "Name:" with no value removes a header in libcurl's terms */
		if (colon == NULL || colon[1 + strspn(colon + 1, " ")] == '\0')
			continue;
		appendStringInfoString(&conn->out, h->data);
		appendBinaryStringInfo(&conn->out, "\r\n", 2);
	}
	appendStringInfo(&conn->out, "Content-Length: %d\r\n\r\n", req->body.len);
	appendBinaryStringInfo(&conn->out, req->body.data, req->body.len);

	if (conn->state == CONN_IDLE)
	{
		conn->state = CONN_SENDING;
		conn_send(plain, conn);
	}
	else
	{
		conn->connect_deadline =
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), req->connect_timeout_ms);
		conn_resolve(plain, conn, t);
	}
}

static void
conn_send(MfgPlain *plain, PlainConn *conn)
{
	while (conn->out_sent < conn->out.len)
	{
		ssize_t		n = send(conn->fd, conn->out.data + conn->out_sent,
							 conn->out.len - conn->out_sent, MSG_NOSIGNAL);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				conn_watch(plain, conn);
				return;
			}
			if (!resend(plain, conn))
				fail(plain, conn, CURLE_SEND_ERROR,
					 "Failed sending data to %s: %s", conn->origin, strerror(errno));
			return;
		}
		conn->out_sent += n;
	}
	conn->state = CONN_RECEIVING;
	conn_watch(plain, conn);
}

/* keep at most max_response_bytes of the body; false when cut off */
static bool
keep_body(MfgHttpRequest *req, const char *data, size_t len)
{
	if (req->response.len + len > req->max_response_bytes)
	{
		appendBinaryStringInfo(&req->response, data,
							   req->max_response_bytes - req->response.len);
		req->truncated = true;
		return false;
	}
	appendBinaryStringInfo(&req->response, data, len);
	return true;
}

/* the next CRLF-terminated line at in_used, or NULL if incomplete */
static char *
next_line(PlainConn *conn, int *linelen)
{
	char	   *start = conn->in.data + conn->in_used;
	char	   *end = memchr(start, '\n', conn->in.len - conn->in_used);

	if (end == NULL)
		return NULL;
	*linelen = (int) (end - start);
	if (*linelen > 0 && start[*linelen - 1] == '\r')
		(*linelen)--;
	conn->in_used = (int) (end - conn->in.data) + 1;
	return start;
}

/* the header value after "name:", or NULL if line is another header */
static const char *
header_value(const char *line, int len, const char *name)
{
	size_t		nlen = strlen(name);

	if ((size_t) len <= nlen || line[nlen] != ':' ||
		pg_strncasecmp(line, name, nlen) != 0)
		return NULL;
	line += nlen + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/* does the comma-separated header value v list token (any case)? */
static bool
has_token(const char *v, const char *token)
{
	size_t		len = strlen(token);

	while (*v)
	{
		size_t		n;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, ",");
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n == len && pg_strncasecmp(v, token, len) == 0)
			return true;
		v += strcspn(v, ",");
	}
	return false;
}

/* is token the last one of the comma-separated header value v? */
static bool
last_token_is(const char *v, const char *token)
{
	const char *last = strrchr(v, ',');
	size_t		n;

	last = last ? last + 1 : v;
	while (*last == ' ' || *last == '\t')
		last++;
	n = strlen(last);
	while (n > 0 && (last[n - 1] == ' ' || last[n - 1] == '\t'))
		n--;
	return n == strlen(token) && pg_strncasecmp(last, token, n) == 0;
}

/*
 * Parse the status line and headers once all of them are in; false when
 * more bytes are needed.  The caller has checked for the empty line.
 */
static bool
parse_head(MfgPlain *plain, PlainConn *conn, char **error)
{
	MfgHttpRequest *req = conn->req;
	char	   *line;
	int			len;
	int			minor;
	int			status;
	bool		chunked = false;
	bool		saw_close = false;
	bool		keep_alive = false;
	int64		length = -1;

	line = next_line(conn, &len);
	if (line == NULL)
		return false;
	line[len] = '\0';
	/* "HTTP/1.x NNN reason" */
	if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) line[7]) ||
		line[8] != ' ' || !isdigit((unsigned char) line[9]) ||
		!isdigit((unsigned char) line[10]) || !isdigit((unsigned char) line[11]) ||
		(len > 12 && line[12] != ' ') || line[9] == '0')
	{
		*error = psprintf("Unsupported HTTP answer from %s: \"%.40s\"",
						  conn->origin, line);
		return false;
	}
	minor = line[7] - '0';
	status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	while ((line = next_line(conn, &len)) != NULL && len > 0)
	{
		const char *v;

		line[len] = '\0';
		if ((v = header_value(line, len, "content-length")) != NULL)
		{
			char	   *end;

			errno = 0;
			length = strtoll(v, &end, 10);
			if (errno != 0 || end == v || length < 0)
			{
				*error = psprintf("Invalid Content-Length from %s", conn->origin);
				return false;
			}
		}
		else if ((v = header_value(line, len, "transfer-encoding")) != NULL)
			chunked = last_token_is(v, "chunked");
		else if ((v = header_value(line, len, "connection")) != NULL)
		{
			if (has_token(v, "close"))
				saw_close = true;
			else if (has_token(v, "keep-alive"))
				keep_alive = true;
		}
		else if ((v = header_value(line, len, "location")) != NULL)
		{
			if (conn->location)
				pfree(conn->location);
			conn->location = MemoryContextStrdup(plain->cxt, v);
		}
		else if ((v = header_value(line, len, "retry-after")) != NULL)
		{
			if (conn->retry_after)
				pfree(conn->retry_after);
			conn->retry_after = MemoryContextStrdup(plain->cxt, v);
		}
	}

	/* HTTP/1.0 closes unless asked not to; "close" always closes */
	conn->close_after = saw_close || (minor == 0 && !keep_alive);

	if (status < 200)
	{
		/* an interim answer (100 Continue, 103 Early Hints): the next one */
		if (status == 101)
		{
			*error = psprintf("Unexpected protocol switch from %s", conn->origin);
			return false;
		}
		return true;
	}
	req->status = status;
	conn->got_head = true;
	if (status == 204 || status == 304)
	{
		conn->remaining = 0;
		conn->phase = READ_LENGTH;
	}
	else if (chunked)
		conn->phase = READ_CHUNK_SIZE;
	else if (length >= 0)
	{
		conn->remaining = length;
		conn->phase = READ_LENGTH;
	}
	else
	{
		conn->phase = READ_UNTIL_CLOSE;
		conn->close_after = true;
	}
	return true;
}

/*
 * Parse what has arrived.  Returns true when the answer is complete;
 * sets *error on a protocol error and *cut when the body outgrew the cap.
 */
static bool
parse_answer(MfgPlain *plain, PlainConn *conn, char **error, bool *cut)
{
	MfgHttpRequest *req = conn->req;

	for (;;)
	{
		char	   *p = conn->in.data + conn->in_used;
		int			avail = conn->in.len - conn->in_used;
		char	   *line;
		int			len;

		switch (conn->phase)
		{
			case READ_HEAD:
				{
					/*
					 * Wait for the empty line that ends the headers; what was
					 * searched already is not searched again (but for the
					 * last two bytes, which may start the terminator).
					 */
					char	   *s = p + Max(0, conn->scanned - 2);
					char	   *end = conn->in.data + conn->in.len;
					bool		complete = false;
					int			before = conn->in_used;

					for (; s + 1 < end; s++)
						if (s[0] == '\n' && (s[1] == '\n' ||
											 (s[1] == '\r' && s + 2 < end && s[2] == '\n')))
						{
							complete = true;
							break;
						}
					/* every head of the answer counts, interim ones too */
					if (conn->head_bytes + avail > PLAIN_MAX_HEAD_BYTES && !complete)
					{
						*error = psprintf("Header section from %s larger than %d bytes",
										  conn->origin, PLAIN_MAX_HEAD_BYTES);
						return false;
					}
					if (!complete)
					{
						conn->scanned = avail;
						return false;
					}
					if (!parse_head(plain, conn, error))
						return false;
					conn->scanned = 0;
					conn->head_bytes += conn->in_used - before;
					if (conn->head_bytes > PLAIN_MAX_HEAD_BYTES)
					{
						*error = psprintf("Header section from %s larger than %d bytes",
										  conn->origin, PLAIN_MAX_HEAD_BYTES);
						return false;
					}
					break;
				}
			case READ_LENGTH:
				{
					int			take = (int) Min((int64) avail, conn->remaining);

					if (take > 0 && !keep_body(req, p, take))
					{
						*cut = true;
						return true;
					}
					conn->in_used += take;
					conn->remaining -= take;
					return conn->remaining == 0;
				}
			case READ_UNTIL_CLOSE:
				if (avail > 0 && !keep_body(req, p, avail))
				{
					*cut = true;
					return true;
				}
				conn->in_used += avail;
				return false;	/* complete at end of stream */
			case READ_CHUNK_SIZE:
				{
					char	   *end;

					if ((line = next_line(conn, &len)) == NULL)
					{
						if (avail > PLAIN_MAX_LINE_BYTES)
							*error = psprintf("Invalid chunk size from %s", conn->origin);
						return false;
					}
					/* hex digits, then the end, an extension or blanks */
					errno = 0;
					conn->remaining = len > 0 && isxdigit((unsigned char) line[0]) ?
						strtoll(line, &end, 16) : -1;
					if (errno != 0 || conn->remaining < 0 || end > line + len ||
						(end < line + len && *end != ';' && *end != ' ' && *end != '\t'))
					{
						*error = psprintf("Invalid chunk size from %s", conn->origin);
						return false;
					}
					conn->phase = conn->remaining == 0 ? READ_TRAILER : READ_CHUNK_DATA;
					break;
				}
			case READ_CHUNK_DATA:
				{
					int			take = (int) Min((int64) avail, conn->remaining);

					if (take == 0)
						return false;
					if (!keep_body(req, p, take))
					{
						*cut = true;
						return true;
					}
					conn->in_used += take;
					conn->remaining -= take;
					if (conn->remaining == 0)
						conn->phase = READ_CHUNK_END;
					break;
				}
			case READ_CHUNK_END:
				if ((line = next_line(conn, &len)) == NULL)
				{
					if (avail > 2)
						*error = psprintf("Invalid chunk end from %s", conn->origin);
					return false;
				}
				if (len != 0)
				{
					*error = psprintf("Invalid chunk end from %s", conn->origin);
					return false;
				}
				conn->phase = READ_CHUNK_SIZE;
				break;
			case READ_TRAILER:
				{
					int			before = conn->in_used;

					line = next_line(conn, &len);
					conn->head_bytes += line ? conn->in_used - before : avail;
					if (conn->head_bytes > PLAIN_MAX_HEAD_BYTES)
					{
						*error = psprintf("Trailer section from %s larger than %d bytes",
										  conn->origin, PLAIN_MAX_HEAD_BYTES);
						return false;
					}
					if (line == NULL)
					{
						conn->head_bytes -= avail;	/* counted again next time */
						return false;
					}
					if (len == 0)
						return true;
					break;
				}
		}
	}
}

/* read what the socket has for conn and act on it */
static void
conn_receive(MfgPlain *plain, PlainConn *conn)
{
	ssize_t		n;
	char	   *error = NULL;
	bool		cut = false;

	/* drop what has been parsed: the buffer holds one unparsed tail */
	if (conn->in_used > 0)
	{
		memmove(conn->in.data, conn->in.data + conn->in_used,
				conn->in.len - conn->in_used);
		conn->in.len -= conn->in_used;
		conn->in.data[conn->in.len] = '\0';
		conn->in_used = 0;
	}
	enlargeStringInfo(&conn->in, PLAIN_READ_BYTES);
	n = recv(conn->fd, conn->in.data + conn->in.len,
			 conn->in.maxlen - conn->in.len - 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (conn->state == CONN_IDLE)
	{
		/* the server closed a kept-alive connection, or talks out of turn */
		conn_close(plain, conn);
		return;
	}
	if (n < 0)
	{
		int			err = errno;

		if (!resend(plain, conn))
			fail(plain, conn, CURLE_RECV_ERROR, "Recv failure from %s: %s",
				 conn->origin, strerror(err));
		return;
	}
	if (n == 0)
	{
		if (conn->got_head && conn->phase == READ_UNTIL_CLOSE)
		{
			conn->close_after = true;
			answered(plain, conn);
		}
		else if (!resend(plain, conn))
		{
			if (conn->received == 0)
				fail(plain, conn, CURLE_GOT_NOTHING, "Empty reply from %s",
					 conn->origin);
			else
				fail(plain, conn, CURLE_PARTIAL_FILE,
					 "Connection to %s closed before the answer was complete",
					 conn->origin);
		}
		return;
	}
	conn->in.len += n;
	conn->in.data[conn->in.len] = '\0';
	conn->received += n;

	if (parse_answer(plain, conn, &error, &cut))
	{
		if (cut)
		{
			/* as libcurl: the status stands, the transfer is aborted */
			MfgHttpRequest *req = conn->req;

			req->result = CURLE_WRITE_ERROR;
			snprintf(req->error, CURL_ERROR_SIZE,
					 "answer larger than max_response_bytes (%zu)",
					 req->max_response_bytes);
			conn->close_after = true;
		}
		answered(plain, conn);
	}
	else if (error != NULL)
	{
		fail(plain, conn, CURLE_WEIRD_SERVER_REPLY, "%s", error);
		pfree(error);
	}
}

/*
 * mfgsync_plain_socket_ready
 *		A connection's socket is ready for what it waits for.
 */
void
mfgsync_plain_socket_ready(MfgPlain *plain, void *arg)
{
	PlainConn  *conn = (PlainConn *) arg;

	switch (conn->state)
	{
		case CONN_CONNECTING:
			conn_connected(plain, conn);
			break;
		case CONN_SENDING:
			conn_send(plain, conn);
			break;
		case CONN_RECEIVING:
		case CONN_IDLE:
			conn_receive(plain, conn);
			break;
		case CONN_RESOLVING:
			break;
	}
}

/*
 * mfgsync_plain_timeout
 *		Milliseconds until the next deadline or idle expiry; -1: none.
 */
long
mfgsync_plain_timeout(MfgPlain *plain, TimestampTz now)
{
	TimestampTz next = 0;
	dlist_iter	it;
	long		ms;

	/* lookups given up on are reaped now and then */
	if (plain->zombies != NIL)
		next = TimestampTzPlusMilliseconds(now, PLAIN_ZOMBIE_POLL_MS);
	dlist_foreach(it, &plain->conns)
	{
		PlainConn  *conn = dlist_container(PlainConn, node, it.cur);
		TimestampTz t;

		if (conn->state == CONN_RESOLVING)
			return PLAIN_RESOLVE_POLL_MS;
		if (conn->state == CONN_IDLE)
			t = TimestampTzPlusMilliseconds(conn->idle_since, PLAIN_IDLE_MS);
		else
		{
			t = TimestampTzPlusMilliseconds(conn->req->started, conn->req->timeout_ms);
			if (conn->state == CONN_CONNECTING)
				t = Min(t, conn->connect_deadline);
		}
		if (next == 0 || t < next)
			next = t;
	}
	if (next == 0)
		return -1;
	ms = TimestampDifferenceMilliseconds(now, next);
	/* round up: waking a moment early would only wait again */
	return next > now ? ms + 1 : 0;
}

/*
 * mfgsync_plain_check_timers
 *		Fail requests past their deadlines, close idle connections, and
 *		go on with names that have been resolved.
 */
void
mfgsync_plain_check_timers(MfgPlain *plain)
{
	TimestampTz now = GetCurrentTimestamp();
	dlist_mutable_iter it;
	ListCell   *lc;

	foreach(lc, plain->zombies)
	{
		Resolve    *r = lfirst(lc);

		if (gai_error(&r->gai) != EAI_INPROGRESS)
		{
			if (r->gai.ar_result != NULL)
				freeaddrinfo(r->gai.ar_result);
			free_resolve(r);
			plain->zombies = foreach_delete_current(plain->zombies, lc);
		}
	}

	dlist_foreach_modify(it, &plain->conns)
	{
		PlainConn  *conn = dlist_container(PlainConn, node, it.cur);
		MfgHttpRequest *req = conn->req;

		if (conn->state == CONN_IDLE)
		{
			if (now >= TimestampTzPlusMilliseconds(conn->idle_since, PLAIN_IDLE_MS))
				conn_close(plain, conn);
			continue;
		}
		if ((conn->state == CONN_RESOLVING || conn->state == CONN_CONNECTING) &&
			now >= conn->connect_deadline)
		{
			fail(plain, conn, CURLE_OPERATION_TIMEDOUT,
				 "Connection timeout after %ld ms connecting to %s",
				 req->connect_timeout_ms, conn->origin);
			continue;
		}
		if (now >= TimestampTzPlusMilliseconds(req->started, req->timeout_ms))
		{
			fail(plain, conn, CURLE_OPERATION_TIMEDOUT,
				 "Operation timed out after %ld milliseconds with " INT64_FORMAT " bytes received from %s",
				 req->timeout_ms, conn->received, conn->origin);
			continue;
		}
		if (conn->state == CONN_RESOLVING)
			conn_check_resolved(plain, conn);
	}
}

MfgHttpRequest *
mfgsync_plain_next_done(MfgPlain *plain)
{
	MfgHttpRequest *req;

	if (plain->done == NIL)
		return NULL;
	req = linitial(plain->done);
	plain->done = list_delete_first(plain->done);
	return req;
}

/*
 * mfgsync_plain_abort
 *		Forget req, closing its connection if it is still being served.
 *		Returns whether it was still to be reported by next_done.
 */
bool
mfgsync_plain_abort(MfgPlain *plain, MfgHttpRequest *req)
{
	bool		pending = list_member_ptr(plain->done, req);

	if (req->conn != NULL)
	{
		PlainConn  *conn = (PlainConn *) req->conn;

		conn->req = NULL;
		conn_close(plain, conn);
		req->conn = NULL;
		pending = true;
	}
	plain->done = list_delete_ptr(plain->done, req);
	return pending;
}
