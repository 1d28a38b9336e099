/*-------------------------------------------------------------------------
 *
 * b2mml_in.h
 *		  Inbound B2MML: receive_b2mml (b2mml_in.c) and the checks of the
 *		  messages it takes (b2mml_check.c)
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

/* in b2mml_check.c: what well-formedness does not catch */
extern char *mfgsync_b2mml_check_tree(xmlNodePtr node, bool xml);
extern char *mfgsync_b2mml_check_schema(xmlDocPtr doc);

#endif							/* MFGSYNC_B2MML_IN_H */
