/*-------------------------------------------------------------------------
 *
 * webhook.h
 *		  Webhook bodies (plain, CloudEvents) and Standard Webhooks signatures
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/webhook.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_WEBHOOK_H
#define MFGSYNC_WEBHOOK_H

#include "lib/stringinfo.h"

typedef enum MfgEnvelope
{
	MFG_ENVELOPE_WEBHOOK,		/* mfgsync's JSON envelope */
	MFG_ENVELOPE_CLOUDEVENTS,	/* CloudEvents 1.0, structured mode */
	MFG_ENVELOPE_CLOUDEVENTS_BATCH	/* CloudEvents 1.0, batched mode */
} MfgEnvelope;

/* one event as the sender read it; JSON members are JSON text */
typedef struct MfgEvent
{
	int64		id;
	char	   *message_type;
	char	   *action;
	char	   *key;
	char	   *data;
	char	   *old_data;		/* NULL for Add */
	char	   *time;			/* created_at as a JSON string */
} MfgEvent;

/* a Standard Webhooks signing key, decoded from "whsec_<base64>" */
typedef struct MfgSecret
{
	int			len;
	uint8		key[64];
} MfgSecret;

extern const char *mfgsync_webhook_content_type(MfgEnvelope envelope);
extern void mfgsync_webhook_append(StringInfo buf, MfgEnvelope envelope,
								   const MfgEvent *ev, const char *source);
extern bool mfgsync_webhook_decode_secret(const char *secret, MfgSecret *out);
extern char *mfgsync_webhook_signature(const MfgSecret *secrets, int nsecrets,
									   const char *msg_id, int64 timestamp,
									   const char *body, int len);

#endif							/* MFGSYNC_WEBHOOK_H */
