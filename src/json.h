/*-------------------------------------------------------------------------
 *
 * json.h
 *		  Rendering of SQL values as JSON text
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/json.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MFGSYNC_JSON_H
#define MFGSYNC_JSON_H

#include "fmgr.h"
#include "lib/stringinfo.h"

/* how a value of one SQL type is written as JSON */
typedef enum MfgJsonCategory
{
	MFG_JSON_BOOL,				/* true / false */
	MFG_JSON_INTEGER,			/* int2, int4, int8: bare number */
	MFG_JSON_FLOAT,				/* float4, float8: shortest exact number */
	MFG_JSON_NUMBER,			/* numeric: bare number */
	MFG_JSON_DATETIME,			/* date, timestamp, timestamptz: ISO 8601 */
	MFG_JSON_JSON,				/* json, jsonb: embedded as is */
	MFG_JSON_BYTEA,				/* bytea: "\\x" + hex, as to_json does */
	MFG_JSON_ARRAY,				/* arrays: nested JSON arrays */
	MFG_JSON_COMPOSITE,			/* row types: JSON objects */
	MFG_JSON_TEXT,				/* text, varchar, bpchar: stored text, escaped */
	MFG_JSON_STRING				/* everything else: its text as a string */
} MfgJsonCategory;

/* everything needed to render values of one type, resolved once */
typedef struct MfgJsonType
{
	Oid			typid;			/* base type (domains resolved) */
	MfgJsonCategory category;	/* rendering rule */
	FmgrInfo	outfunc;		/* the type's output function */
} MfgJsonType;

extern void mfgsync_json_type_init(MfgJsonType *jt, Oid typid,
								   MemoryContext mcxt);
extern void mfgsync_json_append_value(StringInfo buf, Datum value,
									  bool isnull, MfgJsonType *jt);
extern void mfgsync_json_append_key(StringInfo buf, const char *name);

#endif							/* MFGSYNC_JSON_H */
