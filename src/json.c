/*-------------------------------------------------------------------------
 *
 * json.c
 *		  Rendering of SQL values as JSON text
 *
 * Change events carry row values as JSON.  The rendering must be exact:
 * numbers keep every digit (numeric is never squeezed through a double,
 * floats are their shortest exact decimal whatever extra_float_digits says),
 * date-times are ISO 8601 (timestamptz with its offset, in the session's
 * TimeZone, as to_json does), bytea is its hex text, arrays and row types
 * nest, domains render as their base type and enums as their label.
 * Strings are escaped as core's escape_json escapes them, so quotes,
 * backslashes and control characters are escaped and non-ASCII UTF-8
 * passes unchanged.  Text types and integers, the common columns, are
 * rendered from their stored value without the output function's copy.
 *
 * The output matches to_json() (with extra_float_digits at its default) for
 * every type except those that define a cast to json, which are rendered as
 * strings.  Callers resolve the type of each column once
 * (mfgsync_json_type_init) and then render each value without catalog
 * lookups, except inside arrays and row types.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/json.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "json.h"

static void append_array_dim(StringInfo buf, int dim, int ndims,
							 const int *dims, Datum *elems, bool *nulls,
							 int *index, MfgJsonType *elemtype);

/*
 * categorize
 *		The rendering rule for a base type.
 */
static MfgJsonCategory
categorize(Oid typid)
{
	switch (typid)
	{
		case BOOLOID:
			return MFG_JSON_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return MFG_JSON_INTEGER;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return MFG_JSON_TEXT;
		case FLOAT4OID:
		case FLOAT8OID:
			return MFG_JSON_FLOAT;
		case NUMERICOID:
			return MFG_JSON_NUMBER;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return MFG_JSON_DATETIME;
		case JSONOID:
		case JSONBOID:
			return MFG_JSON_JSON;
		case BYTEAOID:
			return MFG_JSON_BYTEA;
		default:
			break;
	}
	if (OidIsValid(get_element_type(typid)))
		return MFG_JSON_ARRAY;
	if (type_is_rowtype(typid))
		return MFG_JSON_COMPOSITE;
	return MFG_JSON_STRING;
}

/*
 * mfgsync_json_type_init
 *		Resolve how values of type typid are rendered.
 *
 * Domains are resolved to their base type.  The output function's FmgrInfo
 * is allocated in mcxt, which must live as long as jt.
 */
void
mfgsync_json_type_init(MfgJsonType *jt, Oid typid, MemoryContext mcxt)
{
	Oid			outfunc;
	bool		isvarlena;

	jt->typid = getBaseType(typid);
	jt->category = categorize(jt->typid);
	getTypeOutputInfo(jt->typid, &outfunc, &isvarlena);
	fmgr_info_cxt(outfunc, &jt->outfunc, mcxt);
}

/*
 * mfgsync_json_append_key
 *		Append "name": to buf, escaped.
 */
void
mfgsync_json_append_key(StringInfo buf, const char *name)
{
	escape_json(buf, name);
	appendStringInfoChar(buf, ':');
}

/*
 * append_bytea
 *		Append a bytea as the JSON string "\\x<hex>", independent of the
 *		bytea_output setting.
 */
static void
append_bytea(StringInfo buf, bytea *b)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(b);
	int			len = VARSIZE_ANY_EXHDR(b);
	int			i;

	enlargeStringInfo(buf, 2 * len + 6);
	appendStringInfoString(buf, "\"\\\\x");
	for (i = 0; i < len; i++)
	{
		buf->data[buf->len++] = hex[p[i] >> 4];
		buf->data[buf->len++] = hex[p[i] & 0x0F];
	}
	buf->data[buf->len] = '\0';
	appendStringInfoChar(buf, '"');
}

/*
 * append_text
 *		Append a text value as a JSON string, escaped exactly as core's
 *		escape_json does, but copying the runs that need no escape at once:
 *		the stored bytes of text, varchar and bpchar are their output text.
 */
static void
append_text(StringInfo buf, text *t)
{
	const char *p = VARDATA_ANY(t);
	const char *end = p + VARSIZE_ANY_EXHDR(t);
	const char *run = p;

	enlargeStringInfo(buf, (end - p) + 2);
	appendStringInfoChar(buf, '"');
	for (; p < end; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c >= ' ' && c != '"' && c != '\\')
			continue;
		appendBinaryStringInfo(buf, run, p - run);
		run = p + 1;
		switch (c)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				appendStringInfo(buf, "\\u%04x", (int) c);
				break;
		}
	}
	appendBinaryStringInfo(buf, run, p - run);
	appendStringInfoChar(buf, '"');
}

/*
 * append_integer
 *		Append an int2, int4 or int8 in decimal, without the output
 *		function's allocation.
 */
static void
append_integer(StringInfo buf, Datum value, Oid typid)
{
	char		digits[MAXINT8LEN + 1];

	if (typid == INT8OID)
		pg_lltoa(DatumGetInt64(value), digits);
	else if (typid == INT4OID)
		pg_ltoa(DatumGetInt32(value), digits);
	else
		pg_ltoa((int32) DatumGetInt16(value), digits);
	appendStringInfoString(buf, digits);
}

/*
 * append_number
 *		Append a number's text; NaN and infinities have no JSON number form
 *		and become strings, as in to_json.
 */
static void
append_number(StringInfo buf, const char *text)
{
	if (strcmp(text, "NaN") == 0 || strcmp(text, "Infinity") == 0 ||
		strcmp(text, "-Infinity") == 0)
		escape_json(buf, text);
	else
		appendStringInfoString(buf, text);
}

/*
 * append_float
 *		Append a float4 or float8 as the shortest decimal that reads back as
 *		the same value: what their output functions print by default, but
 *		not rounded when the session lowers extra_float_digits (a rounded
 *		payload would also hide real changes from the no-op check).
 */
static void
append_float(StringInfo buf, Datum value, Oid typid)
{
	char		digits[DOUBLE_SHORTEST_DECIMAL_LEN];

	if (typid == FLOAT8OID)
		double_to_shortest_decimal_buf(DatumGetFloat8(value), digits);
	else
		float_to_shortest_decimal_buf(DatumGetFloat4(value), digits);
	append_number(buf, digits);
}

/*
 * append_array
 *		Append an array as (nested) JSON arrays, one level per dimension.
 */
static void
append_array(StringInfo buf, Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	Oid			elemtypid = ARR_ELEMTYPE(arr);
	int			ndims = ARR_NDIM(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			index = 0;
	MfgJsonType elemtype;

	if (ndims <= 0 || ArrayGetNItems(ndims, ARR_DIMS(arr)) == 0)
	{
		appendStringInfoString(buf, "[]");
		return;
	}
	mfgsync_json_type_init(&elemtype, elemtypid, CurrentMemoryContext);
	get_typlenbyvalalign(elemtypid, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtypid, typlen, typbyval, typalign,
					  &elems, &nulls, &nelems);
	append_array_dim(buf, 0, ndims, ARR_DIMS(arr), elems, nulls, &index,
					 &elemtype);
}

/*
 * append_array_dim
 *		Append dimension dim of an array, consuming elements at *index.
 */
static void
append_array_dim(StringInfo buf, int dim, int ndims, const int *dims,
				 Datum *elems, bool *nulls, int *index, MfgJsonType *elemtype)
{
	int			i;

	appendStringInfoChar(buf, '[');
	for (i = 0; i < dims[dim]; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		if (dim + 1 == ndims)
		{
			mfgsync_json_append_value(buf, elems[*index], nulls[*index],
									  elemtype);
			(*index)++;
		}
		else
			append_array_dim(buf, dim + 1, ndims, dims, elems, nulls, index,
							 elemtype);
	}
	appendStringInfoChar(buf, ']');
}

/*
 * append_composite
 *		Append a row value as a JSON object keyed by attribute name.
 */
static void
append_composite(StringInfo buf, Datum value)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(value);
	TupleDesc	tupdesc;
	HeapTupleData tuple;
	bool		first = true;
	int			i;

	tupdesc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td),
									 HeapTupleHeaderGetTypMod(td));
	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;

	appendStringInfoChar(buf, '{');
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		MfgJsonType atttype;
		Datum		attval;
		bool		attnull;

		if (att->attisdropped)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		mfgsync_json_append_key(buf, NameStr(att->attname));
		attval = heap_getattr(&tuple, i + 1, tupdesc, &attnull);
		mfgsync_json_type_init(&atttype, att->atttypid, CurrentMemoryContext);
		mfgsync_json_append_value(buf, attval, attnull, &atttype);
	}
	appendStringInfoChar(buf, '}');
	ReleaseTupleDesc(tupdesc);
}

/*
 * mfgsync_json_append_value
 *		Append one value of the type described by jt to buf as JSON.
 *
 * Allocates in CurrentMemoryContext (output text, detoasted copies), which
 * the caller resets per row.
 */
void
mfgsync_json_append_value(StringInfo buf, Datum value, bool isnull,
						  MfgJsonType *jt)
{
	char		dtbuf[MAXDATELEN + 1];

	if (isnull)
	{
		appendStringInfoString(buf, "null");
		return;
	}

	switch (jt->category)
	{
		case MFG_JSON_BOOL:
			appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
			break;
		case MFG_JSON_INTEGER:
			append_integer(buf, value, jt->typid);
			break;
		case MFG_JSON_FLOAT:
			append_float(buf, value, jt->typid);
			break;
		case MFG_JSON_NUMBER:
			append_number(buf, OutputFunctionCall(&jt->outfunc, value));
			break;
		case MFG_JSON_DATETIME:
			appendStringInfoChar(buf, '"');
			appendStringInfoString(buf,
								   JsonEncodeDateTime(dtbuf, value, jt->typid,
													  NULL));
			appendStringInfoChar(buf, '"');
			break;
		case MFG_JSON_JSON:
			appendStringInfoString(buf, OutputFunctionCall(&jt->outfunc, value));
			break;
		case MFG_JSON_BYTEA:
			append_bytea(buf, DatumGetByteaPP(value));
			break;
		case MFG_JSON_ARRAY:
			append_array(buf, value);
			break;
		case MFG_JSON_COMPOSITE:
			append_composite(buf, value);
			break;
		case MFG_JSON_TEXT:
			append_text(buf, DatumGetTextPP(value));
			break;
		case MFG_JSON_STRING:
			escape_json(buf, OutputFunctionCall(&jt->outfunc, value));
			break;
	}
}
