/*-------------------------------------------------------------------------
 *
 * b2mml_in.h
 *		  Inbound B2MML: the lenient message reader and receive_b2mml
 *
 * The Business To Manufacturing Markup Language (B2MML) is used courtesy
 * of MESA International.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml_in.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_B2MML_IN_H
#define MFGSYNC_B2MML_IN_H

#include <libxml/tree.h>

#include "b2mml.h"

/* which ApplicationArea field deduplicates inbound messages */
typedef enum MfgB2mmlDedupKey
{
	MFG_B2MML_DEDUP_AUTO,		/* BODID when present, else Sender/LogicalID */
	MFG_B2MML_DEDUP_BODID,		/* BODID only */
	MFG_B2MML_DEDUP_LOGICALID	/* Sender/LogicalID only (edinn) */
} MfgB2mmlDedupKey;

/* in guc.c */
extern char *mfgsync_b2mml_schema;
extern int	mfgsync_b2mml_dedup_key;

/*
 * Read a B2MML message given as XML or as JSON in either dialect (MESA's
 * B2MML-JSON or edinn's) into one libxml2 tree, every element in the B2MML
 * V0600 namespace.  text is UTF-8.  On success *dialect says which syntax
 * the message used; the caller frees the tree with xmlFreeDoc.  On failure
 * returns NULL and sets *why (palloc'd) to a one-line reason; *dialect is
 * still set to the syntax the text looked like.  Never raises an error for
 * bad input.
 */
extern xmlDocPtr b2mml_read_message(const char *text, int len,
									B2mmlDialect *dialect, char **why);

/* the JSON half of b2mml_read_message, usable on its own */
extern xmlDocPtr b2mml_read_json(const char *text, int len,
								 B2mmlDialect *dialect, char **why);

#endif							/* MFGSYNC_B2MML_IN_H */
