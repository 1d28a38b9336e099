/*-------------------------------------------------------------------------
 *
 * webhook.c
 *		  Webhook bodies (plain, CloudEvents) and Standard Webhooks signatures
 *
 * The plain envelope carries what a receiver needs to apply a change and
 * deduplicate it:
 *
 *	 {"id": "42", "type": "ProductionOrder.Updated", "time": "...",
 *	  "message_type": "ProductionOrder", "action": "Change",
 *	  "key": {...}, "data": {...}, "old_data": {...}}
 *
 * CloudEvents 1.0 structured mode puts the same under "data", with id,
 * source, specversion, type and time as context attributes; batched mode
 * sends a JSON array of such events.  Payloads are copied verbatim from
 * the outbox, whose JSON the capture trigger rendered (json.c).
 *
 * Signatures follow the Standard Webhooks specification: the receiver
 * gets webhook-id, webhook-timestamp and webhook-signature, the latter
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>" once per active secret,
 * separated by spaces.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/webhook.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/resowner.h"

#include "mfgsync.h"
#include "outbox.h"
#include "webhook.h"

/* "Created", "Updated", ... for an action */
static const char *
event_verb(const char *action)
{
	if (strcmp(action, MFGSYNC_ACTION_ADD) == 0)
		return "Created";
	if (strcmp(action, MFGSYNC_ACTION_CHANGE) == 0)
		return "Updated";
	if (strcmp(action, MFGSYNC_ACTION_DELETE) == 0)
		return "Deleted";
	if (strcmp(action, MFGSYNC_ACTION_TRUNCATE) == 0)
		return "Truncated";
	return action;
}

const char *
mfgsync_webhook_content_type(MfgEnvelope envelope)
{
	switch (envelope)
	{
		case MFG_ENVELOPE_CLOUDEVENTS:
			return "application/cloudevents+json";
		case MFG_ENVELOPE_CLOUDEVENTS_BATCH:
			return "application/cloudevents-batch+json";
		default:
			return "application/json";
	}
}

/* "type": "ProductionOrder.Updated" */
static void
append_type(StringInfo buf, const MfgEvent *ev)
{
	StringInfoData type;

	initStringInfo(&type);
	appendStringInfo(&type, "%s.%s", ev->message_type, event_verb(ev->action));
	appendStringInfoString(buf, "\"type\":");
	escape_json(buf, type.data);
	pfree(type.data);
}

/* "key": ..., "data": ..., "old_data": ... */
static void
append_payload(StringInfo buf, const MfgEvent *ev)
{
	appendStringInfo(buf, "\"key\":%s,\"data\":%s,\"old_data\":%s",
					 ev->key ? ev->key : "null",
					 ev->data ? ev->data : "null",
					 ev->old_data ? ev->old_data : "null");
}

/*
 * mfgsync_webhook_append
 *		Append one event's body; for the batched mode, one element of the
 *		array (the caller writes the brackets and commas).
 */
void
mfgsync_webhook_append(StringInfo buf, MfgEnvelope envelope,
					   const MfgEvent *ev, const char *source)
{
	if (envelope == MFG_ENVELOPE_WEBHOOK)
	{
		appendStringInfo(buf, "{\"id\":\"" INT64_FORMAT "\",", ev->id);
		append_type(buf, ev);
		appendStringInfo(buf, ",\"time\":%s,\"message_type\":", ev->time);
		escape_json(buf, ev->message_type);
		appendStringInfoString(buf, ",\"action\":");
		escape_json(buf, ev->action);
		appendStringInfoChar(buf, ',');
		append_payload(buf, ev);
		appendStringInfoChar(buf, '}');
		return;
	}

	appendStringInfo(buf, "{\"specversion\":\"1.0\",\"id\":\"" INT64_FORMAT "\",\"source\":", ev->id);
	escape_json(buf, source);
	appendStringInfoChar(buf, ',');
	append_type(buf, ev);
	appendStringInfo(buf, ",\"time\":%s,\"datacontenttype\":\"application/json\",\"data\":{\"action\":", ev->time);
	escape_json(buf, ev->action);
	appendStringInfoChar(buf, ',');
	append_payload(buf, ev);
	appendStringInfoString(buf, "}}");
}

/*
 * mfgsync_webhook_decode_secret
 *		Decode "whsec_<base64>"; false if it is not one.
 */
bool
mfgsync_webhook_decode_secret(const char *secret, MfgSecret *out)
{
	const char *b64;
	char		buf[128];
	int			len;

	if (strncmp(secret, "whsec_", 6) != 0)
		return false;
	b64 = secret + 6;
	if (pg_b64_dec_len(strlen(b64)) > (int) sizeof(buf))
		return false;
	len = pg_b64_decode(b64, strlen(b64), buf, sizeof(buf));
	if (len <= 0 || len > (int) sizeof(out->key))
		return false;
	memcpy(out->key, buf, len);
	out->len = len;
	explicit_bzero(buf, sizeof(buf));
	return true;
}

/*
 * mfgsync_webhook_signature
 *		The webhook-signature header value: "v1,<base64>" per secret.
 */
char *
mfgsync_webhook_signature(const MfgSecret *secrets, int nsecrets,
						  const char *msg_id, int64 timestamp,
						  const char *body, int len)
{
	StringInfoData sig;
	char		prefix[128];
	int			prefixlen;
	int			i;

	static ResourceOwner hmac_owner = NULL;
	ResourceOwner save_owner = CurrentResourceOwner;

	/*
	 * With OpenSSL, HMAC contexts are tracked by a resource owner; senders
	 * sign outside transactions, so they get one of their own.
	 */
	if (hmac_owner == NULL)
		hmac_owner = ResourceOwnerCreate(NULL, "mfgsync webhook signatures");
	CurrentResourceOwner = hmac_owner;

	prefixlen = snprintf(prefix, sizeof(prefix), "%s." INT64_FORMAT ".",
						 msg_id, timestamp);
	initStringInfo(&sig);
	for (i = 0; i < nsecrets; i++)
	{
		pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
		uint8		mac[PG_SHA256_DIGEST_LENGTH];
		char		b64[64];
		int			b64len;

		if (ctx == NULL ||
			pg_hmac_init(ctx, secrets[i].key, secrets[i].len) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) prefix, prefixlen) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) body, len) < 0 ||
			pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not compute a webhook signature: %s",
							pg_hmac_error(ctx))));
		pg_hmac_free(ctx);
		b64len = pg_b64_encode((const char *) mac, sizeof(mac), b64, sizeof(b64));
		if (i > 0)
			appendStringInfoChar(&sig, ' ');
		appendStringInfo(&sig, "v1,%.*s", b64len, b64);
	}
	CurrentResourceOwner = save_owner;
	return sig.data;
}

PG_FUNCTION_INFO_V1(mfgsync_webhook_render);

/*
 * mfgsync_webhook_render
 *		SQL: webhook_render(event_id bigint) RETURNS text, the plain webhook
 *		envelope of an event (a preview; the baseline of test/bench/b2mml.sh,
 *		which reads the event the way b2mml_render does).
 */
Datum
mfgsync_webhook_render(PG_FUNCTION_ARGS)
{
	int64		event_id = PG_GETARG_INT64(0);
	MemoryContext callercxt = CurrentMemoryContext;
	MfgEvent	ev;
	StringInfoData buf;

	mfgsync_check_spi(SPI_connect(), SPI_OK_CONNECT, "SPI_connect");
	mfgsync_outbox_read_event(event_id, &ev);
	initStringInfo(&buf);
	mfgsync_webhook_append(&buf, MFG_ENVELOPE_WEBHOOK, &ev, NULL);
	MemoryContextSwitchTo(callercxt);
	{
		text	   *result = cstring_to_text_with_len(buf.data, buf.len);

		SPI_finish();
		PG_RETURN_TEXT_P(result);
	}
}
