/*-------------------------------------------------------------------------
 *
 * http_fdw_option.c
 *		  Options of the mfgsync_http wrapper: validation and resolution
 *
 * Every option is declared once in the table below with the catalogs it
 * may appear in and the kind of value it takes.  The validator rejects
 * unknown options with a hint that lists the valid ones for that catalog
 * and checks each value (URLs are http or https, enums, numbers, JSON
 * paths, rate limits), so a mistake is reported by CREATE/ALTER and not by
 * the first scan.  Credentials are valid on user mappings only, which only
 * their owner and superusers can read (pg_user_mappings hides them).
 *
 * Table options may also be given on the server, where they are defaults
 * for its tables (and for IMPORT FOREIGN SCHEMA).
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw_option.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include <limits.h>

#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"


/* the catalogs an option may appear in */
#define C_WRAPPER	0x01
#define C_SERVER	0x02
#define C_MAPPING	0x04
#define C_TABLE		0x08
#define C_COLUMN	0x10

/* the kinds of values */
typedef enum OptKind
{
	K_TEXT,						/* any non-empty text */
	K_URL,						/* http:// or https:// URL */
	K_PATH,						/* resource path starting with / */
	K_INT,						/* integer in [min, max] */
	K_ENUM,						/* one of a list */
	K_JSONPATH,					/* a.b[0].c */
	K_HEADERS,					/* JSON object of strings */
	K_RESOURCES,				/* JSON object: name -> path or options */
	K_RATE,						/* N/interval */
	K_HEADER_NAME,				/* an HTTP header field name */
	K_QUERY						/* a=b&c=d */
} OptKind;

typedef struct MfgFdwOption
{
	const char *name;
	int			contexts;
	OptKind		kind;
	int			min;			/* K_INT */
	int			max;
	const char *const *values;	/* K_ENUM, NULL-terminated */
} MfgFdwOption;

static const char *const paging_values[] =
{"none", "page", "offset", "cursor", "next_url", "link", NULL};
static const char *const grant_values[] =
{"client_credentials", "password", NULL};
static const char *const client_auth_values[] = {"basic", "body", NULL};

#define C_TABLE_DEFAULT (C_TABLE | C_SERVER)

static const MfgFdwOption fdw_options[] =
{
	/* server */
	{"base_url", C_SERVER, K_URL, 0, 0, NULL},
	{"headers", C_SERVER, K_HEADERS, 0, 0, NULL},
	{"ca_file", C_SERVER, K_TEXT, 0, 0, NULL},
	{"timeout", C_SERVER, K_INT, 1, INT_MAX, NULL},
	{"connect_timeout", C_SERVER, K_INT, 1, INT_MAX, NULL},
	{"retries", C_SERVER, K_INT, 0, 100, NULL},
	{"retry_delay", C_SERVER, K_INT, 0, 3600000, NULL},
	{"max_retry_wait", C_SERVER, K_INT, 0, 86400000, NULL},
	{"rate_limit", C_SERVER, K_RATE, 0, 0, NULL},
	{"daily_budget", C_SERVER, K_INT, 1, INT_MAX, NULL},
	{"resources", C_SERVER, K_RESOURCES, 0, 0, NULL},
	/* server or user mapping: how an API key is sent (not a secret) */
	{"api_key_header", C_SERVER | C_MAPPING, K_HEADER_NAME, 0, 0, NULL},
	{"api_key_param", C_SERVER | C_MAPPING, K_TEXT, 0, 0, NULL},
	/* user mapping: credentials */
	{"api_key", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"bearer_token", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"username", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"password", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"token_url", C_MAPPING, K_URL, 0, 0, NULL},
	{"client_id", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"client_secret", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"scope", C_MAPPING, K_TEXT, 0, 0, NULL},
	{"oauth2_grant", C_MAPPING, K_ENUM, 0, 0, grant_values},
	{"client_auth", C_MAPPING, K_ENUM, 0, 0, client_auth_values},
	/* table (defaults on the server) */
	{"path", C_TABLE_DEFAULT, K_PATH, 0, 0, NULL},
	{"params", C_TABLE_DEFAULT, K_QUERY, 0, 0, NULL},
	{"rows", C_TABLE_DEFAULT, K_JSONPATH, 0, 0, NULL},
	{"pagination", C_TABLE_DEFAULT, K_ENUM, 0, 0, paging_values},
	{"page_size", C_TABLE_DEFAULT, K_INT, 0, 1000000, NULL},
	{"page_size_param", C_TABLE_DEFAULT, K_TEXT, 0, 0, NULL},
	{"page_param", C_TABLE_DEFAULT, K_TEXT, 0, 0, NULL},
	{"first_page", C_TABLE_DEFAULT, K_INT, 0, INT_MAX, NULL},
	{"offset_param", C_TABLE_DEFAULT, K_TEXT, 0, 0, NULL},
	{"cursor_path", C_TABLE_DEFAULT, K_JSONPATH, 0, 0, NULL},
	{"cursor_param", C_TABLE_DEFAULT, K_TEXT, 0, 0, NULL},
	{"next_url_path", C_TABLE_DEFAULT, K_JSONPATH, 0, 0, NULL},
	{"max_pages", C_TABLE_DEFAULT, K_INT, 1, INT_MAX, NULL},
	{"max_page_bytes", C_TABLE_DEFAULT, K_INT, 1024, INT_MAX, NULL},
	/* column */
	{"path", C_COLUMN, K_JSONPATH, 0, 0, NULL},
	{"param", C_COLUMN, K_TEXT, 0, 0, NULL},
	{"param_lt", C_COLUMN, K_TEXT, 0, 0, NULL},
	{"param_le", C_COLUMN, K_TEXT, 0, 0, NULL},
	{"param_gt", C_COLUMN, K_TEXT, 0, 0, NULL},
	{"param_ge", C_COLUMN, K_TEXT, 0, 0, NULL},
	{NULL, 0, K_TEXT, 0, 0, NULL}
};

static const char *const column_op_option[4] =
{"param_lt", "param_le", "param_gt", "param_ge"};

static int
context_bit(Oid catalog)
{
	switch (catalog)
	{
		case ForeignDataWrapperRelationId:
			return C_WRAPPER;
		case ForeignServerRelationId:
			return C_SERVER;
		case UserMappingRelationId:
			return C_MAPPING;
		case ForeignTableRelationId:
			return C_TABLE;
		case AttributeRelationId:
			return C_COLUMN;
	}
	return 0;
}

static const MfgFdwOption *
find_option(const char *name, int context)
{
	const MfgFdwOption *opt;

	for (opt = fdw_options; opt->name; opt++)
		if ((opt->contexts & context) && strcmp(opt->name, name) == 0)
			return opt;
	return NULL;
}

/* raise "invalid value" for an option */
static void
invalid_value(const char *name, const char *value, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\"", name),
			 detail ? errdetail_internal("%s", detail) : 0));
}

/* an integer option's value, or an error */
static int
int_value(const char *name, const char *value, int min, int max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errhint("The value must be an integer between %d and %d.",
						 min, max)));
	return (int) v;
}

/*
 * mfgsync_fdw_path_parse
 *		Parse a JSON path ("$", "data", "$.data.items", "ops[0].machine")
 *		into path, allocated in the current context.  Raises an error naming
 *		option when the text is not a path.
 */
void
mfgsync_fdw_path_parse(MfgJsonPath *path, const char *text, const char *option)
{
	const char *p = text;
	int			cap = 4;

	path->n = 0;
	path->text = pstrdup(text);
	path->key = palloc(sizeof(char *) * cap);
	path->index = palloc(sizeof(int) * cap);

	if (*p == '$')
	{
		p++;
		if (*p == '.')
			p++;
	}
	while (*p)
	{
		if (path->n == cap)
		{
			cap *= 2;
			path->key = repalloc(path->key, sizeof(char *) * cap);
			path->index = repalloc(path->index, sizeof(int) * cap);
		}
		if (*p == '[')
		{
			char	   *end;
			long		i = strtol(p + 1, &end, 10);

			if (end == p + 1 || *end != ']' || i < 0 || i > INT_MAX)
				goto bad;
			path->key[path->n] = NULL;
			path->index[path->n++] = (int) i;
			p = end + 1;
			if (*p == '.')
			{
				p++;
				if (*p == '\0')
					goto bad;
			}
		}
		else
		{
			const char *start = p;

			while (*p && *p != '.' && *p != '[')
				p++;
			if (p == start)
				goto bad;
			path->key[path->n] = pnstrdup(start, p - start);
			path->index[path->n++] = -1;
			if (*p == '.')
			{
				p++;
				if (*p == '\0')
					goto bad;
			}
		}
	}
	return;

bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\": \"%s\"", option, text),
			 errhint("A JSON path is \"$\" or keys and array indexes such as \"data.items\" or \"$.ops[0].machine\".")));
}

/* parse "N/interval" (interval: [number]ms|s|min|h|d); false if invalid */
static bool
parse_rate(const char *value, int *calls, int64 *interval_ms)
{
	char	   *end;
	long		n;
	double		k = 1;
	int64		unit;

	n = strtol(value, &end, 10);
	if (end == value || n < 1 || n > INT_MAX)
		return false;
	while (*end == ' ')
		end++;
	if (strncmp(end, "/", 1) == 0)
		end++;
	else if (strncmp(end, "per ", 4) == 0)
		end += 4;
	else
		return false;
	while (*end == ' ')
		end++;
	if (isdigit((unsigned char) *end))
	{
		char	   *e2;

		k = strtod(end, &e2);
		end = e2;
		while (*end == ' ')
			end++;
	}
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "s") == 0 || strcmp(end, "second") == 0)
		unit = 1000;
	else if (strcmp(end, "min") == 0 || strcmp(end, "minute") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0 || strcmp(end, "hour") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0 || strcmp(end, "day") == 0)
		unit = 86400000;
	else
		return false;
	if (k <= 0 || k * unit < 1 || k * unit > 366.0 * 86400000)
		return false;
	*calls = (int) n;
	*interval_ms = (int64) (k * unit);
	return true;
}

/* is value an http:// or https:// URL that libcurl can parse? */
static bool
valid_url(const char *value)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		ok;

	ok = curl_url_set(u, CURLUPART_URL, value, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		(pg_strcasecmp(scheme, "http") == 0 ||
		 pg_strcasecmp(scheme, "https") == 0);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* a JSON object whose values are all strings (or, if any_value, anything) */
static bool
valid_json_object(const char *value, bool any_value)
{
	struct json_object *obj = json_tokener_parse(value);
	bool		ok = obj != NULL && json_object_is_type(obj, json_type_object);

	if (ok && !any_value)
	{
		json_object_object_foreach(obj, key, val)
		{
			if (!json_object_is_type(val, json_type_string) || key[0] == '\0' ||
				strpbrk(key, ":\r\n") != NULL ||
				strpbrk(json_object_get_string(val), "\r\n") != NULL)
				ok = false;
		}
	}
	if (obj)
		json_object_put(obj);
	return ok;
}

/* check one option's value; raises an error */
static void
check_value(const MfgFdwOption *opt, const char *value)
{
	MfgJsonPath path;
	int			calls;
	int64		interval;

	switch (opt->kind)
	{
		case K_TEXT:
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must not be empty", opt->name)));
			break;
		case K_HEADER_NAME:
			if (value[0] == '\0' || strpbrk(value, ": \t\r\n") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("Give an HTTP header name such as \"X-API-Key\".")));
			break;
		case K_URL:
			if (!valid_url(value))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("Only http:// and https:// URLs are allowed.")));
			break;
		case K_PATH:
			if (value[0] != '/' || strpbrk(value, " \r\n#") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("A resource path starts with \"/\" and is appended to the server's base_url.")));
			break;
		case K_INT:
			(void) int_value(opt->name, value, opt->min, opt->max);
			break;
		case K_ENUM:
			{
				const char *const *v;
				StringInfoData buf;

				for (v = opt->values; *v; v++)
					if (strcmp(*v, value) == 0)
						return;
				initStringInfo(&buf);
				for (v = opt->values; *v; v++)
					appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", *v);
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("Valid values are: %s.", buf.data)));
			}
			break;
		case K_JSONPATH:
			if (value[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" must not be empty", opt->name),
						 errhint("A JSON path is \"$\" or keys and array indexes such as \"data.items\" or \"$.ops[0].machine\".")));
			mfgsync_fdw_path_parse(&path, value, opt->name);
			break;
		case K_HEADERS:
			if (!valid_json_object(value, false))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\"", opt->name),
						 errhint("Give a JSON object of header names and string values, such as '{\"Accept\": \"application/json\"}'.")));
			break;
		case K_RESOURCES:
			if (!valid_json_object(value, true))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\"", opt->name),
						 errhint("Give a JSON object mapping table names to a resource path or to an object of table options, such as '{\"orders\": \"/orders\"}'.")));
			break;
		case K_RATE:
			if (!parse_rate(value, &calls, &interval))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("Give calls per interval, such as \"10/s\", \"600/min\" or \"10000/24h\".")));
			break;
		case K_QUERY:
			if (strpbrk(value, " \r\n#?") != NULL || value[0] == '&')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"%s\": \"%s\"",
								opt->name, value),
						 errhint("Give URL-encoded query parameters such as \"status=released&plant=P1\".")));
			break;
	}
}

/* the valid options of a catalog, for a hint */
static char *
valid_options(int context)
{
	StringInfoData buf;
	const MfgFdwOption *opt;

	initStringInfo(&buf);
	for (opt = fdw_options; opt->name; opt++)
		if (opt->contexts & context)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", opt->name);
	return buf.data;
}

/* defGetString of the option name in list, or NULL */
static char *
get_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

PG_FUNCTION_INFO_V1(mfgsync_http_fdw_validator);

/*
 * mfgsync_http_fdw_validator
 *		Validate the options of a wrapper, server, user mapping, foreign
 *		table or column.  Raises ERRCODE_FDW_INVALID_OPTION_NAME for an
 *		unknown option (with the valid ones in the hint) and
 *		ERRCODE_INVALID_PARAMETER_VALUE for a bad value or combination.
 */
Datum
mfgsync_http_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	int			context = context_bit(catalog);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		const MfgFdwOption *opt = find_option(def->defname, context);

		if (opt == NULL)
		{
			char	   *valid = valid_options(context);

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 valid[0] ?
					 errhint("Valid options in this context are: %s.", valid) :
					 errhint("There are no valid options in this context.")));
		}
		check_value(opt, defGetString(def));
	}

	if (context == C_MAPPING)
	{
		int			kinds = 0;

		kinds += get_option(options, "api_key") != NULL;
		kinds += get_option(options, "bearer_token") != NULL;
		kinds += get_option(options, "token_url") != NULL;
		if (kinds > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a user mapping may carry only one of \"api_key\", \"bearer_token\" and \"token_url\"")));
		if (get_option(options, "token_url") != NULL &&
			get_option(options, "client_id") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"token_url\" requires \"client_id\"")));
		if (get_option(options, "token_url") == NULL &&
			(get_option(options, "client_id") || get_option(options, "client_secret") ||
			 get_option(options, "scope") || get_option(options, "oauth2_grant") ||
			 get_option(options, "client_auth")))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("OAuth2 options require \"token_url\"")));
		if ((get_option(options, "username") == NULL) !=
			(get_option(options, "password") == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options \"username\" and \"password\" go together")));
		if (get_option(options, "api_key_header") &&
			get_option(options, "api_key_param"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options \"api_key_header\" and \"api_key_param\" exclude each other")));
	}
	else if (context == C_TABLE || context == C_SERVER)
	{
		char	   *paging = get_option(options, "pagination");

		if (context == C_TABLE && paging && strcmp(paging, "cursor") == 0 &&
			get_option(options, "cursor_path") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pagination \"cursor\" requires option \"cursor_path\"")));
		if (context == C_TABLE && paging && strcmp(paging, "next_url") == 0 &&
			get_option(options, "next_url_path") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pagination \"next_url\" requires option \"next_url_path\"")));
	}

	PG_RETURN_VOID();
}

/* the options of the server and then the table; later ones win */
static char *
opt(List *options, const char *name, const char *dflt)
{
	char	   *v = NULL;
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			v = defGetString(def);
	}
	return v ? v : (char *) dflt;
}

static int
opt_int(List *options, const char *name, int dflt)
{
	char	   *v = opt(options, name, NULL);
	const MfgFdwOption *o;

	if (v == NULL)
		return dflt;
	for (o = fdw_options; o->name; o++)
		if (strcmp(o->name, name) == 0 && o->kind == K_INT)
			return int_value(name, v, o->min, o->max);
	return int_value(name, v, INT_MIN, INT_MAX);
}

/*
 * user_mapping_options
 *		The options of userid's user mapping for serverid, else PUBLIC's,
 *		else NIL (*umid InvalidOid).  GetUserMapping would raise instead.
 */
static List *
user_mapping_options(Oid userid, Oid serverid, Oid *umid)
{
	HeapTuple	tp;
	Datum		datum;
	bool		isnull;
	List	   *options = NIL;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	*umid = InvalidOid;
	if (!HeapTupleIsValid(tp))
		return NIL;
	*umid = ((Form_pg_user_mapping) GETSTRUCT(tp))->oid;
	datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp,
							Anum_pg_user_mapping_umoptions, &isnull);
	if (!isnull)
		options = untransformRelOptions(datum);
	ReleaseSysCache(tp);
	return options;
}

/*
 * mfgsync_fdw_server_load
 *		Resolve a server's options, the given table options on top of its
 *		table defaults, and userid's user mapping (or PUBLIC's).  The result
 *		is allocated in the current memory context.  Raises an error when
 *		base_url is missing or an option no longer validates.
 */
MfgFdwTable *
mfgsync_fdw_server_load(Oid serverid, Oid userid, List *extra_table_options)
{
	ForeignServer *server = GetForeignServer(serverid);
	MfgFdwTable *t = palloc0(sizeof(MfgFdwTable));
	List	   *opts = list_concat(list_copy(server->options),
								   extra_table_options);
	List	   *um_opts = NIL;
	char	   *v;
	ListCell   *lc;

	t->serverid = serverid;
	t->servername = pstrdup(server->servername);
	t->userid = userid;

	/* a missing user mapping is fine when the API needs no credentials */
	um_opts = user_mapping_options(userid, serverid, &t->umid);

	t->base_url = opt(opts, "base_url", NULL);
	if (t->base_url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" has no option \"base_url\"",
						server->servername)));
	/* drop a trailing slash: paths start with one */
	t->base_url = pstrdup(t->base_url);
	if (strlen(t->base_url) > 0 && t->base_url[strlen(t->base_url) - 1] == '/')
		t->base_url[strlen(t->base_url) - 1] = '\0';

	v = opt(opts, "headers", NULL);
	if (v)
	{
		struct json_object *obj = json_tokener_parse(v);

		if (obj && json_object_is_type(obj, json_type_object))
		{
			json_object_object_foreach(obj, key, val)
				t->headers = lappend(t->headers,
									 psprintf("%s: %s", key,
											  json_object_get_string(val)));
		}
		if (obj)
			json_object_put(obj);
	}
	t->http.ca_file = opt(opts, "ca_file", NULL);
	t->http.timeout_ms = opt_int(opts, "timeout", 30000);
	t->http.connect_timeout_ms = opt_int(opts, "connect_timeout", 10000);
	t->http.max_response_bytes = (size_t) opt_int(opts, "max_page_bytes",
												  256 * 1024 * 1024);
	t->retries = opt_int(opts, "retries", 3);
	t->retry_delay_ms = opt_int(opts, "retry_delay", 500);
	t->max_retry_wait_ms = opt_int(opts, "max_retry_wait", 60000);
	v = opt(opts, "rate_limit", NULL);
	if (v && !parse_rate(v, &t->rate_calls, &t->rate_interval_ms))
		invalid_value("rate_limit", v, NULL);
	t->daily_budget = opt_int(opts, "daily_budget", 0);

	t->path = opt(opts, "path", "");
	t->params = opt(opts, "params", NULL);
	mfgsync_fdw_path_parse(&t->rows, opt(opts, "rows", "$"), "rows");
	v = opt(opts, "pagination", "none");
	if (strcmp(v, "page") == 0)
		t->paging = MFG_PAGING_PAGE;
	else if (strcmp(v, "offset") == 0)
		t->paging = MFG_PAGING_OFFSET;
	else if (strcmp(v, "cursor") == 0)
		t->paging = MFG_PAGING_CURSOR;
	else if (strcmp(v, "next_url") == 0)
		t->paging = MFG_PAGING_NEXT_URL;
	else if (strcmp(v, "link") == 0)
		t->paging = MFG_PAGING_LINK;
	else
		t->paging = MFG_PAGING_NONE;
	t->page_size = opt_int(opts, "page_size",
						   t->paging == MFG_PAGING_NONE ? 0 : 100);
	t->page_size_param = opt(opts, "page_size_param",
							 t->paging == MFG_PAGING_OFFSET ? "limit" :
							 "page_size");
	t->page_param = opt(opts, "page_param", "page");
	t->first_page = opt_int(opts, "first_page", 1);
	t->offset_param = opt(opts, "offset_param", "offset");
	v = opt(opts, "cursor_path", NULL);
	if (t->paging == MFG_PAGING_CURSOR && v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("pagination \"cursor\" requires option \"cursor_path\"")));
	if (v)
		mfgsync_fdw_path_parse(&t->cursor_path, v, "cursor_path");
	t->cursor_param = opt(opts, "cursor_param", "cursor");
	v = opt(opts, "next_url_path", NULL);
	if (t->paging == MFG_PAGING_NEXT_URL && v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("pagination \"next_url\" requires option \"next_url_path\"")));
	if (v)
		mfgsync_fdw_path_parse(&t->next_url_path, v, "next_url_path");
	t->max_pages = opt_int(opts, "max_pages", 100000);

	/* user mapping: the header/param name may come from the server */
	t->api_key_header = opt(server->options, "api_key_header", NULL);
	t->api_key_param = opt(server->options, "api_key_param", NULL);
	foreach(lc, um_opts)
	{
		DefElem    *def = (DefElem *) lfirst(lc);
		char	   *val = defGetString(def);

		if (strcmp(def->defname, "api_key") == 0)
			t->api_key = val;
		else if (strcmp(def->defname, "api_key_header") == 0)
		{
			t->api_key_header = val;
			t->api_key_param = NULL;
		}
		else if (strcmp(def->defname, "api_key_param") == 0)
		{
			t->api_key_param = val;
			t->api_key_header = NULL;
		}
		else if (strcmp(def->defname, "bearer_token") == 0)
			t->bearer_token = val;
		else if (strcmp(def->defname, "username") == 0)
			t->username = val;
		else if (strcmp(def->defname, "password") == 0)
			t->password = val;
		else if (strcmp(def->defname, "token_url") == 0)
			t->token_url = val;
		else if (strcmp(def->defname, "client_id") == 0)
			t->client_id = val;
		else if (strcmp(def->defname, "client_secret") == 0)
			t->client_secret = val;
		else if (strcmp(def->defname, "scope") == 0)
			t->scope = val;
		else if (strcmp(def->defname, "oauth2_grant") == 0)
			t->grant_password = strcmp(val, "password") == 0;
		else if (strcmp(def->defname, "client_auth") == 0)
			t->client_auth_basic = strcmp(val, "basic") == 0;
		else
			continue;
	}
	if (opt(um_opts, "client_auth", NULL) == NULL)
		t->client_auth_basic = true;
	if (t->api_key_header == NULL && t->api_key_param == NULL)
		t->api_key_header = "X-API-Key";

	if (t->token_url)
		t->auth = MFG_AUTH_OAUTH2;
	else if (t->bearer_token)
		t->auth = MFG_AUTH_BEARER;
	else if (t->api_key)
		t->auth = MFG_AUTH_API_KEY;
	else if (t->username)
		t->auth = MFG_AUTH_BASIC;
	else
		t->auth = MFG_AUTH_NONE;
	return t;
}

/*
 * mfgsync_fdw_table_load
 *		Resolve everything a scan of a foreign table needs (see
 *		mfgsync_fdw_server_load), with its columns.  Allocated in the
 *		current memory context.
 */
MfgFdwTable *
mfgsync_fdw_table_load(Oid foreigntableid, Oid userid)
{
	ForeignTable *table = GetForeignTable(foreigntableid);
	MfgFdwTable *t = mfgsync_fdw_server_load(table->serverid, userid,
											 table->options);
	Relation	rel = table_open(foreigntableid, AccessShareLock);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			i;

	t->columns = palloc0(sizeof(MfgFdwColumn) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);
		MfgFdwColumn *col;
		List	   *copts;
		char	   *v;
		int			k;

		if (attr->attisdropped)
			continue;
		col = &t->columns[t->ncolumns++];
		col->name = pstrdup(NameStr(attr->attname));
		col->attnum = i + 1;
		copts = GetForeignColumnOptions(foreigntableid, i + 1);
		v = opt(copts, "path", NULL);
		if (v == NULL)
		{
			/* the column's name is one key, even with dots in it */
			col->path.n = 1;
			col->path.key = palloc(sizeof(char *));
			col->path.index = palloc(sizeof(int));
			col->path.key[0] = col->name;
			col->path.index[0] = -1;
			col->path.text = col->name;
		}
		else
		{
			mfgsync_fdw_path_parse(&col->path, v, "path");
			col->whole_row = col->path.n == 0;
		}
		col->param = opt(copts, "param", NULL);
		for (k = 0; k < 4; k++)
			col->param_op[k] = opt(copts, column_op_option[k], NULL);
	}
	table_close(rel, AccessShareLock);
	return t;
}

/*
 * mfgsync_fdw_column
 *		The column of attribute attnum, or NULL.
 */
MfgFdwColumn *
mfgsync_fdw_column(MfgFdwTable *t, int attnum)
{
	int			i;

	for (i = 0; i < t->ncolumns; i++)
		if (t->columns[i].attnum == attnum)
			return &t->columns[i];
	return NULL;
}
