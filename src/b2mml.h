/*-------------------------------------------------------------------------
 *
 * b2mml.h
 *		  ISA-95 B2MML V0600 messages: rendering, JSON dialects, ConfirmBOD
 *
 * The Business To Manufacturing Markup Language (B2MML) is used courtesy
 * of MESA International.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_B2MML_H
#define MFGSYNC_B2MML_H

#include <libxml/tree.h>

#include "webhook.h"

/* the namespace of every B2MML V0600 element */
#define MFGSYNC_B2MML_NS "http://www.mesa.org/xml/B2MML-V0600"

/* how a document travels: XML, or one of the two JSON renderings */
typedef enum B2mmlDialect
{
	B2MML_XML,					/* B2MML V0600 XML */
	B2MML_JSON_MESA,			/* MESA's B2MML-JSON: repeatables always arrays */
	B2MML_JSON_EDINN			/* edinn: single occurrences as objects */
} B2mmlDialect;

/* what a ConfirmBOD says */
typedef enum MfgB2mmlVerdict
{
	MFG_B2MML_NO_CONFIRM,		/* no ConfirmBOD (missing, unparsable, other) */
	MFG_B2MML_ACCEPTED,
	MFG_B2MML_REJECTED
} MfgB2mmlVerdict;

/* a ConfirmBOD, read by mfgsync_b2mml_read_confirm; strings palloc'd */
typedef struct MfgB2mmlConfirm
{
	MfgB2mmlVerdict verdict;	/* NO_CONFIRM: see error */
	char	   *bodid;			/* OriginalApplicationArea/BODID, or NULL */
	char	   *logical_id;		/* OriginalApplicationArea/Sender/LogicalID */
	char	   *description;	/* BOD/Description, ChangeStatus/Description */
	char	   *note;			/* BOD/Note */
	char	   *error;			/* why there is no verdict */
} MfgB2mmlConfirm;

/* in guc.c: mfgsync.b2mml_component_id */
extern char *mfgsync_b2mml_component_id;

/* an endpoint's B2MML settings and mappings (opaque; see b2mml.c) */
typedef struct MfgB2mmlEndpoint MfgB2mmlEndpoint;

/* rendering (in a transaction) */
extern MfgB2mmlEndpoint *mfgsync_b2mml_load(int endpoint_id, MemoryContext cxt);
extern char *mfgsync_b2mml_render_event(MfgB2mmlEndpoint *bep,
										const MfgEvent *ev, int *len);
extern const char *mfgsync_b2mml_content_type(const MfgB2mmlEndpoint *bep);
extern bool mfgsync_b2mml_confirm_required(const MfgB2mmlEndpoint *bep);
extern bool mfgsync_b2mml_retry_rejected(const MfgB2mmlEndpoint *bep);

/* reading (no transaction needed) */
extern xmlDocPtr mfgsync_b2mml_parse(const char *text, int len, char **error);
extern void mfgsync_b2mml_read_confirm(xmlDocPtr doc, MfgB2mmlConfirm *out);
extern void mfgsync_b2mml_read_reply(const char *body, int len,
									 MfgB2mmlConfirm *out);

/*
 * For the inbound side (receive_b2mml): settle the message a late
 * ConfirmBOD answers (in a transaction), and write any document as JSON.
 */
extern bool b2mml_settle_confirm(xmlDocPtr confirmbod, char **why);
extern char *b2mml_doc_to_json(xmlDocPtr doc, B2mmlDialect dialect);

#endif							/* MFGSYNC_B2MML_H */
