/*-------------------------------------------------------------------------
 *
 * http_fdw.h
 *		  The mfgsync_http foreign-data wrapper: shared declarations
 *
 * The wrapper is split by concern:
 *   http_fdw.c         FDW callbacks: planning, pushdown, execution,
 *                      EXPLAIN, IMPORT FOREIGN SCHEMA
 *   http_fdw_option.c  option validation and the resolved option structs
 *   http_fdw_fetch.c   requests, streaming row splitter, pagination,
 *                      retries, remote error reporting
 *   http_fdw_row.c     a row's column values, read from its JSON bytes
 *   http_fdw_auth.c    credentials from user mappings, OAuth2 token cache
 *   http_fdw_limit.c   per-server rate limit and daily budget in shared
 *                      memory
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_HTTP_FDW_H
#define MFGSYNC_HTTP_FDW_H

/*
 * json-c names its type json_object, which is also core's SQL function
 * json_object() declared in utils/fmgrprotos.h.  Core's declaration is
 * read first under another name, so that files including this header
 * (right after postgres.h) may include utils/builtins.h as well.
 */
#define json_object mfgsync_pg_json_object
#include "utils/fmgrprotos.h"
#undef json_object
#include <json-c/json.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

#include "http.h"

/* how the pages of a resource follow each other */
typedef enum MfgFdwPaging
{
	MFG_PAGING_NONE,			/* one request */
	MFG_PAGING_PAGE,			/* ?page=1,2,3... */
	MFG_PAGING_OFFSET,			/* ?offset=0,N,2N... */
	MFG_PAGING_CURSOR,			/* ?cursor=<value of a response field> */
	MFG_PAGING_NEXT_URL,		/* a response field holds the next URL */
	MFG_PAGING_LINK				/* RFC 8288 Link: <url>; rel="next" */
} MfgFdwPaging;

/* which credential a user mapping carries */
typedef enum MfgFdwAuth
{
	MFG_AUTH_NONE,
	MFG_AUTH_API_KEY,			/* a header or a query parameter */
	MFG_AUTH_BEARER,			/* Authorization: Bearer <token> */
	MFG_AUTH_BASIC,				/* Authorization: Basic user:password */
	MFG_AUTH_OAUTH2				/* client credentials or password grant */
} MfgFdwAuth;

/* a JSON path: keys and array indexes, e.g. data.items[0].code */
typedef struct MfgJsonPath
{
	int			n;				/* number of steps; 0: the value itself */
	char	  **key;			/* key of step i, or NULL for an index */
	int		   *index;			/* array index of step i when key is NULL */
	char	   *text;			/* as written, for messages */
} MfgJsonPath;

/* one column of a foreign table */
typedef struct MfgFdwColumn
{
	char	   *name;			/* attribute name */
	int			attnum;			/* 1-based */
	MfgJsonPath path;			/* where its value sits in a row */
	bool		whole_row;		/* path '$': the whole row as JSON */
	char	   *param;			/* query parameter for = and IN */
	char	   *param_op[4];	/* ... for <, <=, >, >= (MFG_OP_*) */
} MfgFdwColumn;

/* operators that can become query parameters, indexes into param_op */
#define MFG_OP_LT 0
#define MFG_OP_LE 1
#define MFG_OP_GT 2
#define MFG_OP_GE 3
#define MFG_OP_EQ 4				/* = and IN: MfgFdwColumn.param */

/*
 * Everything a scan needs to know about a foreign table, resolved from the
 * options of the server, the table, its columns and the current user's
 * mapping.  Secrets stay in the auth fields and are never printed.
 */
typedef struct MfgFdwTable
{
	Oid			serverid;
	Oid			userid;			/* whose user mapping (0: PUBLIC) */
	Oid			umid;			/* the user mapping's oid, or InvalidOid */
	char	   *servername;

	/* server */
	char	   *base_url;		/* http:// or https:// */
	List	   *headers;		/* "Name: value" strings */
	MfgHttpOptions http;		/* timeouts, CA file, page byte cap */
	int			retries;		/* attempts after the first on 429/5xx */
	int			retry_delay_ms; /* first back-off, doubled each time */
	int			max_retry_wait_ms;	/* cap for Retry-After */
	int			rate_calls;		/* 0: no rate limit */
	int64		rate_interval_ms;
	int			daily_budget;	/* 0: none */

	/* table */
	char	   *path;			/* resource path, appended to base_url */
	char	   *params;			/* fixed query string, or NULL */
	MfgJsonPath rows;			/* where the row array sits */
	MfgFdwPaging paging;
	int			page_size;		/* 0: do not send a page size */
	char	   *page_size_param;
	char	   *page_param;
	int			first_page;
	char	   *offset_param;
	MfgJsonPath cursor_path;
	char	   *cursor_param;
	MfgJsonPath next_url_path;
	int			max_pages;

	/* columns, in attribute order; dropped ones are absent */
	int			ncolumns;
	MfgFdwColumn *columns;

	/* user mapping */
	MfgFdwAuth	auth;
	char	   *api_key;
	char	   *api_key_header; /* NULL when api_key_param is used */
	char	   *api_key_param;
	char	   *bearer_token;
	char	   *username;
	char	   *password;
	char	   *token_url;
	char	   *client_id;
	char	   *client_secret;
	char	   *scope;
	bool		grant_password; /* OAuth2 password grant (ION) */
	bool		client_auth_basic;	/* client credentials as Basic */
} MfgFdwTable;

/* a pushed-down qual at run time: name=value for the request */
typedef struct MfgFdwParam
{
	char	   *name;
	char	   *value;
} MfgFdwParam;

/* statistics of one scan, for EXPLAIN ANALYZE */
typedef struct MfgFdwStats
{
	int64		pages;
	int64		requests;
	int64		bytes;
	int64		rows;
} MfgFdwStats;

/* a JSON value inside a row's bytes: [start, end); start NULL: none */
typedef struct MfgJsonSpan
{
	const char *start;
	const char *end;
} MfgJsonSpan;

/* where a scan puts the column values of each row it reads */
typedef struct MfgFdwRowSink
{
	int			ncols;
	MfgFdwColumn **cols;		/* the mapped columns */
	MfgJsonSpan *spans;			/* ... their values in the current row */
} MfgFdwRowSink;

typedef enum MfgRowResult
{
	MFG_ROW_OK,
	MFG_ROW_MALFORMED,
	MFG_ROW_INCOMPLETE			/* the bytes end inside the row */
} MfgRowResult;

typedef struct MfgFdwScan MfgFdwScan;
struct json_object;

/* in http_fdw_option.c */
extern Datum mfgsync_http_fdw_validator(PG_FUNCTION_ARGS);
extern MfgFdwTable *mfgsync_fdw_table_load(Oid foreigntableid, Oid userid);
extern MfgFdwTable *mfgsync_fdw_server_load(Oid serverid, Oid userid,
											List *extra_table_options);
extern void mfgsync_fdw_path_parse(MfgJsonPath *path, const char *text,
								   const char *option);
extern MfgFdwColumn *mfgsync_fdw_column(MfgFdwTable *t, int attnum);

/* in http_fdw_fetch.c */
extern MfgHttp *mfgsync_fdw_http(void);
extern void mfgsync_fdw_wait(MfgHttp *http);
extern MfgFdwScan *mfgsync_fdw_scan_create(MfgFdwTable *t, MemoryContext cxt);
extern void mfgsync_fdw_scan_start(MfgFdwScan *s, List *params, int64 limit);
extern struct json_object *mfgsync_fdw_scan_next(MfgFdwScan *s, int64 *rowno);
extern bool mfgsync_fdw_scan_next_row(MfgFdwScan *s, MfgFdwRowSink *sink,
									  int64 *rowno);
extern void mfgsync_fdw_scan_stats(MfgFdwScan *s, MfgFdwStats *stats);
extern char *mfgsync_fdw_first_url(MfgFdwTable *t, List *params, int64 limit);
extern struct json_object *mfgsync_fdw_json_get(struct json_object *obj,
												const MfgJsonPath *path);

/* in http_fdw_row.c */
extern MfgRowResult mfgsync_fdw_row_parse(const char *row, int len,
										  MfgFdwRowSink *sink, int *used,
										  int *erroff, const char **detail);
extern char *mfgsync_fdw_json_text(const MfgJsonSpan *span, bool is_json,
								   int *len);
extern bool mfgsync_fdw_iso_timestamptz(const char *s, int len,
										TimestampTz *result);

/* in http_fdw_auth.c */
extern void mfgsync_fdw_auth_apply(MfgFdwTable *t, struct curl_slist **headers,
								   StringInfo query, bool refresh);

/* in http_fdw_limit.c */
extern void mfgsync_http_fdw_init(void);
extern void mfgsync_fdw_limit_acquire(MfgFdwTable *t);

#endif							/* MFGSYNC_HTTP_FDW_H */
