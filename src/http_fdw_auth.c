/*-------------------------------------------------------------------------
 *
 * http_fdw_auth.c
 *		  mfgsync_http: credentials from user mappings, OAuth2 tokens
 *
 * Credentials come only from the user mapping of the current user (or
 * PUBLIC): an API key sent as a header or a query parameter, a bearer
 * token, basic auth, or OAuth2 (client credentials grant, or the password
 * grant that Infor ION's .ionapi files describe).  They are added to a
 * request as it is made and never appear in messages or EXPLAIN.
 *
 * OAuth2 access tokens are cached in backend memory per (server, user)
 * until 30 seconds before they expire.  A 401 answer makes the scan ask
 * for a new token once (refresh = true).  Any change to a server or user
 * mapping empties the cache (syscache invalidation), so new credentials
 * take effect at once.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw_auth.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include "common/base64.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"


#define MFG_TOKEN_MARGIN_S 30
#define MFG_TOKEN_MAX_BYTES (64 * 1024)

typedef struct MfgTokenKey
{
	Oid			serverid;
	Oid			userid;
} MfgTokenKey;

typedef struct MfgToken
{
	MfgTokenKey key;			/* hash key */
	char		token[4096];	/* access token */
	TimestampTz expires;		/* 0: no expiry given */
} MfgToken;

static HTAB *token_cache = NULL;

/* a server or user mapping changed: forget every token */
static void
invalidate_tokens(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS status;
	MfgToken   *tok;

	if (token_cache == NULL)
		return;
	hash_seq_init(&status, token_cache);
	while ((tok = hash_seq_search(&status)) != NULL)
	{
		explicit_bzero(tok->token, sizeof(tok->token));
		hash_search(token_cache, &tok->key, HASH_REMOVE, NULL);
	}
}

static HTAB *
tokens(void)
{
	if (token_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(MfgTokenKey);
		ctl.entrysize = sizeof(MfgToken);
		token_cache = hash_create("mfgsync http_fdw OAuth2 tokens", 8, &ctl,
								  HASH_ELEM | HASH_BLOBS);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, invalidate_tokens, 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, invalidate_tokens, 0);
	}
	return token_cache;
}

/* "user:password" as base64 */
static char *
basic_credentials(const char *user, const char *password)
{
	char	   *plain = psprintf("%s:%s", user, password);
	int			len = strlen(plain);
	char	   *out = palloc(pg_b64_enc_len(len) + 1);
	int			n = pg_b64_encode(plain, len, out, pg_b64_enc_len(len));

	if (n < 0)
		elog(ERROR, "could not encode credentials");
	out[n] = '\0';
	explicit_bzero(plain, len);
	pfree(plain);
	return out;
}

static void
append_form(StringInfo buf, const char *name, const char *value)
{
	char	   *e = curl_easy_escape(NULL, value, 0);

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	appendStringInfo(buf, "%s%s=%s", buf->len ? "&" : "", name, e);
	curl_free(e);
}

/* ask the token endpoint for an access token; raises on failure */
static void
fetch_token(MfgFdwTable *t, MfgToken *tok)
{
	MfgHttp    *http = mfgsync_fdw_http();
	MfgHttpOptions opts = t->http;
	MfgHttpRequest *req;
	struct json_object *doc = NULL;
	struct json_object *v;

	opts.max_response_bytes = MFG_TOKEN_MAX_BYTES;
	req = mfgsync_http_request(http, t->token_url, &opts);
	PG_TRY();
	{
		MfgHttpRequest *done = NULL;

		append_form(&req->body, "grant_type",
					t->grant_password ? "password" : "client_credentials");
		if (t->grant_password)
		{
			append_form(&req->body, "username", t->username ? t->username : "");
			append_form(&req->body, "password", t->password ? t->password : "");
		}
		if (t->scope)
			append_form(&req->body, "scope", t->scope);
		if (t->client_auth_basic)
		{
			char	   *cred = basic_credentials(t->client_id,
												 t->client_secret ? t->client_secret : "");
			char	   *h = psprintf("Authorization: Basic %s", cred);

			req->headers = curl_slist_append(req->headers, h);
			explicit_bzero(h, strlen(h));
		}
		else
		{
			append_form(&req->body, "client_id", t->client_id);
			if (t->client_secret)
				append_form(&req->body, "client_secret", t->client_secret);
		}
		req->headers = curl_slist_append(req->headers,
										 "Content-Type: application/x-www-form-urlencoded");
		req->headers = curl_slist_append(req->headers, "Accept: application/json");
		mfgsync_http_start(http, req);
		while (done == NULL)
		{
			mfgsync_fdw_wait(http);
			done = mfgsync_http_next_done(http);
			if (done != NULL && done != req)
				elog(ERROR, "unexpected HTTP request finished");
		}
		explicit_bzero(req->body.data, req->body.len);

		if (req->result != CURLE_OK || req->status != 200)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("could not obtain an OAuth2 access token for server \"%s\"",
							t->servername),
					 req->status != 0 ?
					 errdetail("The token endpoint answered HTTP %ld: %.200s",
							   req->status, req->response.data) :
					 errdetail("%s", req->error),
					 errcontext("remote request: POST %s", t->token_url)));
		doc = json_tokener_parse(req->response.data);
		if (doc == NULL ||
			!json_object_object_get_ex(doc, "access_token", &v) ||
			!json_object_is_type(v, json_type_string) ||
			json_object_get_string_len(v) >= (int) sizeof(tok->token) ||
			json_object_get_string_len(v) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the token endpoint of server \"%s\" sent no usable access_token",
							t->servername),
					 errcontext("remote request: POST %s", t->token_url)));
		strlcpy(tok->token, json_object_get_string(v), sizeof(tok->token));
		tok->expires = 0;
		if (json_object_object_get_ex(doc, "expires_in", &v))
		{
			int64		secs = json_object_get_int64(v);

			if (secs > 0)
				tok->expires = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   Max(secs - MFG_TOKEN_MARGIN_S, 1) * 1000);
		}
	}
	PG_FINALLY();
	{
		if (doc)
			json_object_put(doc);
		mfgsync_http_abort(http, req);
	}
	PG_END_TRY();
}

/*
 * mfgsync_fdw_auth_apply
 *		Add t's credentials to a request: headers go to *headers, an API
 *		key parameter to the URL in query.  With refresh, an OAuth2 token
 *		is fetched anew even if one is cached.  Raises when no token can be
 *		had.
 */
void
mfgsync_fdw_auth_apply(MfgFdwTable *t, struct curl_slist **headers,
					   StringInfo query, bool refresh)
{
	char	   *h = NULL;

	switch (t->auth)
	{
		case MFG_AUTH_NONE:
			return;
		case MFG_AUTH_API_KEY:
			if (t->api_key_param)
			{
				char	   *e = curl_easy_escape(NULL, t->api_key, 0);

				appendStringInfo(query, "%c%s=%s",
								 strchr(query->data, '?') ? '&' : '?',
								 t->api_key_param, e ? e : "");
				curl_free(e);
				return;
			}
			h = psprintf("%s: %s", t->api_key_header, t->api_key);
			break;
		case MFG_AUTH_BEARER:
			h = psprintf("Authorization: Bearer %s", t->bearer_token);
			break;
		case MFG_AUTH_BASIC:
			h = psprintf("Authorization: Basic %s",
						 basic_credentials(t->username, t->password));
			break;
		case MFG_AUTH_OAUTH2:
			{
				MfgTokenKey key;
				MfgToken   *tok;
				bool		found;

				key.serverid = t->serverid;
				key.userid = t->userid;
				tok = hash_search(tokens(), &key, HASH_ENTER, &found);
				if (!found)
					tok->token[0] = '\0';
				if (refresh || tok->token[0] == '\0' ||
					(tok->expires != 0 && tok->expires <= GetCurrentTimestamp()))
				{
					tok->token[0] = '\0';
					fetch_token(t, tok);
				}
				h = psprintf("Authorization: Bearer %s", tok->token);
			}
			break;
	}
	*headers = curl_slist_append(*headers, h);
	explicit_bzero(h, strlen(h));
	pfree(h);
}
