/*-------------------------------------------------------------------------
 *
 * b2mml.h
 *		  ISA-95 B2MML V0600 messages: the interface of b2mml.c (rendering,
 *		  mappings, confirmations), b2mml_read.c (the reader, the tree,
 *		  ConfirmBOD) and b2mml_json.c (the JSON dialects)
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

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

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

/* in b2mml.c: rendering (in a transaction) */
extern MfgB2mmlEndpoint *mfgsync_b2mml_load(int endpoint_id, MemoryContext cxt);
extern char *mfgsync_b2mml_render_event(MfgB2mmlEndpoint *bep,
										const MfgEvent *ev, int *len);
extern const char *mfgsync_b2mml_content_type(const MfgB2mmlEndpoint *bep);
extern bool mfgsync_b2mml_confirm_required(const MfgB2mmlEndpoint *bep);
extern bool mfgsync_b2mml_retry_rejected(const MfgB2mmlEndpoint *bep);

/* in b2mml_read.c: reading (no transaction needed, nothing raised) */
extern xmlDocPtr mfgsync_b2mml_read(const char *text, int len,
									const char *encoding,
									B2mmlDialect *dialect, char **why);
extern void mfgsync_b2mml_read_confirm(xmlDocPtr doc, MfgB2mmlConfirm *out);
extern void mfgsync_b2mml_read_reply(const char *body, int len,
									 MfgB2mmlConfirm *out);

/* in b2mml_read.c: libxml2 errors, the first one of an operation kept */
extern void mfgsync_b2mml_xml_error_reset(void);
extern void mfgsync_b2mml_xml_error_handler(void *ctx, xmlErrorPtr error);
extern char *mfgsync_b2mml_xml_error_text(void);

/* in b2mml_read.c: the tree, elements found by local name */
extern bool mfgsync_b2mml_is_element(xmlNodePtr n, const char *name);
extern xmlNodePtr mfgsync_b2mml_child(xmlNodePtr parent, const char *name);
extern xmlNodePtr mfgsync_b2mml_next(xmlNodePtr node, const char *name);
extern char *mfgsync_b2mml_text(xmlNodePtr node);
extern char *mfgsync_b2mml_child_text(xmlNodePtr parent, const char *name);
extern char *mfgsync_b2mml_attr(xmlNodePtr node, const char *name);
extern char *mfgsync_b2mml_path(xmlNodePtr node);
extern xmlNodePtr mfgsync_b2mml_add(xmlNodePtr parent, const char *name,
									const char *text);

/* in b2mml_json.c: the JSON dialects, both ways */
extern xmlDocPtr mfgsync_b2mml_json_to_doc(const char *text, int len,
										   B2mmlDialect *dialect, char **why);
extern char *mfgsync_b2mml_doc_to_json(xmlDocPtr doc, B2mmlDialect dialect);

/*
 * in b2mml.c, for the inbound side (receive_b2mml): settle the message a
 * late ConfirmBOD answers (in a transaction)
 */
extern bool mfgsync_b2mml_settle_confirm(xmlDocPtr confirmbod, char **why);

#endif							/* MFGSYNC_B2MML_H */
