/*-------------------------------------------------------------------------
 *
 * http_fdw_row.c
 *		  mfgsync_http: the values of a row's columns, read from its bytes
 *
 * A scan hands over each row as the bytes of one JSON object.  Building a
 * json-c tree per row and printing values back to text cost more than the
 * rest of the scan together, so a row is read here in one pass: the whole
 * object is validated (strict JSON, RFC 8259: a malformed row is an error
 * with the byte offset where it goes wrong), and the values of the keys
 * that columns map are noted as spans of the row's bytes.  Deeper paths
 * (a.b[2].c) are then followed inside the span of their first key.  Only
 * the values of columns become C strings:
 *
 *   - strings are unescaped (\uXXXX, surrogate pairs) for non-JSON columns;
 *   - numbers, true and false keep their text;
 *   - objects and arrays are their text without insignificant whitespace;
 *   - json and jsonb columns get every value as JSON text;
 *   - null and absent keys are SQL NULL.
 *
 * Of duplicate keys the last one counts, as with json-c.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw_row.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/* deeper rows are refused (json-c's default limit was 32) */
#define ROW_MAX_DEPTH 64

typedef struct RowReader
{
	const char *p;				/* next byte */
	const char *end;			/* end of the row */
	const char *errpos;			/* where the row is malformed */
	const char *err;			/* what is wrong */
	/* top level: the columns whose first path step is a key */
	int			ncols;
	MfgFdwColumn *const *cols;
	MfgJsonSpan *spans;
} RowReader;

static bool read_value(RowReader *r, int depth);

static bool
fail(RowReader *r, const char *at, const char *detail)
{
	r->errpos = at;
	r->err = detail;
	return false;
}

static inline void
skip_ws(RowReader *r)
{
	while (r->p < r->end &&
		   (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

/* the value of four hex digits at p, or -1 */
static int
hex4(const char *p, const char *end)
{
	int			v = 0;
	int			i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* bytes that end the plain run of a string: controls, quote, backslash */
static const bool string_special[256] = {
	[0x00] = true, [0x01] = true, [0x02] = true, [0x03] = true,
	[0x04] = true, [0x05] = true, [0x06] = true, [0x07] = true,
	[0x08] = true, [0x09] = true, [0x0a] = true, [0x0b] = true,
	[0x0c] = true, [0x0d] = true, [0x0e] = true, [0x0f] = true,
	[0x10] = true, [0x11] = true, [0x12] = true, [0x13] = true,
	[0x14] = true, [0x15] = true, [0x16] = true, [0x17] = true,
	[0x18] = true, [0x19] = true, [0x1a] = true, [0x1b] = true,
	[0x1c] = true, [0x1d] = true, [0x1e] = true, [0x1f] = true,
	['"'] = true, ['\\'] = true
};

/* a string at r->p (the opening quote); *escaped: it holds a backslash */
static bool
read_string(RowReader *r, bool *escaped)
{
	const char *p = r->p + 1;
	const char *end = r->end;

	*escaped = false;
	for (;;)
	{
		unsigned char c;

		while (p < end && !string_special[(unsigned char) *p])
			p++;
		if (p >= end)
			return fail(r, p, "The row ends inside a string.");
		c = (unsigned char) *p;
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(r, p, "A control character is not escaped in a string.");
		*escaped = true;
		if (p + 1 >= end)
			return fail(r, p, "The row ends inside a string.");
		switch (p[1])
		{
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				p += 2;
				break;
			case 'u':
				{
					int			u = hex4(p + 2, end);

					if (u < 0)
						return fail(r, p, "A \\u escape needs four hex digits.");
					if (u >= 0xDC00 && u <= 0xDFFF)
						return fail(r, p, "A Unicode low surrogate must follow a high surrogate.");
					if (u >= 0xD800 && u <= 0xDBFF)
					{
						int			lo = -1;

						if (end - p >= 12 && p[6] == '\\' && p[7] == 'u')
							lo = hex4(p + 8, end);
						if (lo < 0xDC00 || lo > 0xDFFF)
							return fail(r, p, "A Unicode high surrogate must be followed by a low surrogate.");
						p += 6;
					}
					p += 6;
				}
				break;
			default:
				return fail(r, p, "Invalid escape in a string.");
		}
	}
	r->p = p + 1;
	return true;
}

static inline bool
is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* a number at r->p: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
read_number(RowReader *r)
{
	const char *p = r->p;
	const char *end = r->end;

	if (*p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (is_digit(p, end))
		while (is_digit(p, end))
			p++;
	else
		return fail(r, p, "Invalid number.");
	if (p < end && *p == '.')
	{
		p++;
		if (!is_digit(p, end))
			return fail(r, p, "Invalid number: digits must follow the decimal point.");
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return fail(r, p, "Invalid number: digits must follow the exponent.");
		while (is_digit(p, end))
			p++;
	}
	r->p = p;
	return true;
}

/* true, false or null at r->p */
static bool
read_literal(RowReader *r, const char *word, int len)
{
	if (r->end - r->p < len || memcmp(r->p, word, len) != 0)
		return fail(r, r->p, "Expected a value.");
	r->p += len;
	return true;
}

/* is the key (its bytes between the quotes) equal to want? */
static bool
key_equals(const char *k, const char *kend, bool escaped, const char *want)
{
	MfgJsonSpan span;
	char	   *text;
	int			len;
	int			wantlen;
	bool		eq;

	if (!escaped)
	{
		/* want is NUL-terminated: stop at the first difference */
		for (; k < kend; k++, want++)
			if (*k != *want)
				return false;
		return *want == '\0';
	}
	wantlen = strlen(want);
	span.start = k - 1;
	span.end = kend + 1;
	text = mfgsync_fdw_json_text(&span, false, &len);
	eq = len == wantlen && memcmp(text, want, wantlen) == 0;
	pfree(text);
	return eq;
}

/* a top-level key was read: note the value for the columns it maps */
static void
match_key(RowReader *r, const char *k, const char *kend, bool escaped,
		  const char *v, const char *vend)
{
	int			i;

	for (i = 0; i < r->ncols; i++)
	{
		const MfgJsonPath *path = &r->cols[i]->path;

		if (r->cols[i]->whole_row || path->key[0] == NULL)
			continue;
		if (key_equals(k, kend, escaped, path->key[0]))
		{
			r->spans[i].start = v;
			r->spans[i].end = vend;
		}
	}
}

/* an object at r->p; at depth 1 with columns, note their values */
static bool
read_object(RowReader *r, int depth)
{
	if (depth > ROW_MAX_DEPTH)
		return fail(r, r->p, "Nesting is too deep.");
	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == '}')
	{
		r->p++;
		return true;
	}
	for (;;)
	{
		const char *k;
		const char *kend;
		const char *v;
		bool		escaped;

		skip_ws(r);
		if (r->p >= r->end || *r->p != '"')
			return fail(r, r->p, "Expected a key.");
		k = r->p;
		if (!read_string(r, &escaped))
			return false;
		kend = r->p - 1;
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':')
			return fail(r, r->p, "Expected \":\" after a key.");
		r->p++;
		skip_ws(r);
		v = r->p;
		if (!read_value(r, depth))
			return false;
		if (depth == 1 && r->ncols > 0)
			match_key(r, k + 1, kend, escaped, v, r->p);
		skip_ws(r);
		if (r->p < r->end && *r->p == ',')
		{
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}')
		{
			r->p++;
			return true;
		}
		return fail(r, r->p, "Expected \",\" or \"}\".");
	}
}

static bool
read_array(RowReader *r, int depth)
{
	if (depth > ROW_MAX_DEPTH)
		return fail(r, r->p, "Nesting is too deep.");
	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == ']')
	{
		r->p++;
		return true;
	}
	for (;;)
	{
		if (!read_value(r, depth))
			return false;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',')
		{
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']')
		{
			r->p++;
			return true;
		}
		return fail(r, r->p, "Expected \",\" or \"]\".");
	}
}

/* any value at r->p (after white space); depth: of the enclosing value */
static bool
read_value(RowReader *r, int depth)
{
	bool		escaped;

	skip_ws(r);
	if (r->p >= r->end)
		return fail(r, r->p, "The row ends where a value is expected.");
	switch (*r->p)
	{
		case '"':
			return read_string(r, &escaped);
		case '{':
			return read_object(r, depth + 1);
		case '[':
			return read_array(r, depth + 1);
		case 't':
			return read_literal(r, "true", 4);
		case 'f':
			return read_literal(r, "false", 5);
		case 'n':
			return read_literal(r, "null", 4);
		default:
			if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
				return read_number(r);
			return fail(r, r->p, "Expected a value.");
	}
}

/* the end of a value already validated */
static const char *
value_end(const char *v, const char *end)
{
	RowReader	r = {0};

	r.p = v;
	r.end = end;
	if (!read_value(&r, 0))
		elog(ERROR, "mfgsync_http: a validated JSON value does not parse");
	return r.p;
}

/* follow path from step on inside the validated value *span */
static bool
follow(MfgJsonSpan *span, const MfgJsonPath *path, int step)
{
	const char *v = span->start;
	const char *end = span->end;

	for (; step < path->n; step++)
	{
		const char *found = NULL;
		const char *found_end = NULL;
		int			idx = 0;
		const char *p;

		if (path->key[step] != NULL ? *v != '{' : *v != '[')
			return false;
		p = v + 1;
		for (;;)
		{
			const char *vs;

			while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
				p++;
			if (*p == '}' || *p == ']')
				break;
			if (path->key[step] != NULL)
			{
				const char *k = p + 1;
				bool		escaped;
				RowReader	r = {0};
				bool		eq;

				r.p = p;
				r.end = end;
				(void) read_string(&r, &escaped);
				eq = key_equals(k, r.p - 1, escaped, path->key[step]);
				p = r.p;
				while (*p != ':')
					p++;
				p++;
				while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
					p++;
				vs = p;
				p = value_end(vs, end);
				if (eq)
				{
					found = vs;
					found_end = p;
				}
			}
			else
			{
				vs = p;
				p = value_end(vs, end);
				if (idx++ == path->index[step])
				{
					found = vs;
					found_end = p;
					break;
				}
			}
			while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
				p++;
			if (*p == ',')
				p++;
		}
		if (found == NULL)
			return false;
		v = found;
		end = found_end;
	}
	span->start = v;
	span->end = end;
	return true;
}

/*
 * mfgsync_fdw_row_parse
 *		Validate a row (one JSON object at row, len bytes available) and set
 *		sink->spans[i] to the value of sink->cols[i] (start NULL: none).
 *
 *		With used NULL the row is exactly the len bytes.  Otherwise the
 *		object may end before len (*used: its length), and a row cut off
 *		by the end of the bytes gives MFG_ROW_INCOMPLETE: the caller waits
 *		for more.  MFG_ROW_MALFORMED comes with *erroff, the offset in the
 *		row where it goes wrong, and *detail.
 */
MfgRowResult
mfgsync_fdw_row_parse(const char *row, int len, MfgFdwRowSink *sink,
					  int *used, int *erroff, const char **detail)
{
	RowReader	r = {0};
	int			i;
	int			n;
	bool		deeper = false;
	MfgFdwColumn *const *cols = sink->cols;
	MfgJsonSpan *spans = sink->spans;

	for (i = 0; i < sink->ncols; i++)
	{
		spans[i].start = spans[i].end = NULL;
		if (!cols[i]->whole_row && cols[i]->path.n > 1)
			deeper = true;
	}
	r.p = row;
	r.end = row + len;
	r.ncols = sink->ncols;
	r.cols = cols;
	r.spans = spans;
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		fail(&r, r.p, "A row must be a JSON object.");
	else if (read_object(&r, 1) && used == NULL)
	{
		skip_ws(&r);
		if (r.p < r.end)
			fail(&r, r.p, "Unexpected data in a row.");
	}
	if (r.err)
	{
		/*
		 * Bytes cut off inside an escape, a literal or a surrogate pair
		 * fail a few bytes before the end (12: the longest such step):
		 * the caller reads the row again once complete, and a row that
		 * is really malformed there fails then.
		 */
		if (used != NULL && r.end - r.errpos <= 12)
			return MFG_ROW_INCOMPLETE;
		*erroff = (int) (r.errpos - row);
		*detail = r.err;
		return MFG_ROW_MALFORMED;
	}
	n = (int) (r.p - row);
	if (used != NULL)
		*used = n;
	i = pg_encoding_verifymbstr(GetDatabaseEncoding(), row, n);
	if (i < n)
	{
		*erroff = i;
		*detail = psprintf("The bytes are not valid %s.",
						   GetDatabaseEncodingName());
		return MFG_ROW_MALFORMED;
	}
	for (i = 0; i < sink->ncols; i++)
	{
		if (cols[i]->whole_row)
		{
			spans[i].start = row;
			spans[i].end = row + n;
		}
		else if (deeper && spans[i].start != NULL && cols[i]->path.n > 1 &&
				 !follow(&spans[i], &cols[i]->path, 1))
			spans[i].start = spans[i].end = NULL;
	}
	return MFG_ROW_OK;
}

/* append the code point as server-encoded bytes */
static char *
put_code_point(char *out, pg_wchar cp)
{
	int			enc = GetDatabaseEncoding();
	unsigned char buf[MAX_UNICODE_EQUIVALENT_STRING + 1];
	int			n;

	if (cp < 0x80)
	{
		*out++ = (char) cp;
		return out;
	}
	/* SQL_ASCII keeps UTF-8 bytes, as json-c gave them */
	if (enc == PG_UTF8 || enc == PG_SQL_ASCII)
	{
		unicode_to_utf8(cp, buf);
		n = pg_utf_mblen(buf);
	}
	else
	{
		pg_unicode_to_server(cp, buf);
		n = strlen((char *) buf);
	}
	memcpy(out, buf, n);
	return out + n;
}

/*
 * mfgsync_fdw_json_text
 *		The text of a validated value for a column's input function,
 *		palloc'd, with its length in *len; NULL for JSON null or no value.
 *		JSON columns (is_json) get JSON text; others get strings unescaped.
 */
char *
mfgsync_fdw_json_text(const MfgJsonSpan *span, bool is_json, int *len)
{
	const char *p = span->start;
	const char *end = span->end;
	char	   *out;
	char	   *o;

	*len = 0;
	if (p == NULL || *p == 'n')
		return NULL;
	if (*p == '"' && !is_json)
	{
		/* unescape: the text never grows */
		out = o = palloc(end - p);
		for (p++, end--; p < end;)
		{
			const char *bs = memchr(p, '\\', end - p);
			pg_wchar	cp;

			if (bs == NULL)
				bs = end;
			memcpy(o, p, bs - p);
			o += bs - p;
			p = bs;
			if (p == end)
				break;
			switch (p[1])
			{
				case 'b':
					*o++ = '\b';
					break;
				case 'f':
					*o++ = '\f';
					break;
				case 'n':
					*o++ = '\n';
					break;
				case 'r':
					*o++ = '\r';
					break;
				case 't':
					*o++ = '\t';
					break;
				case 'u':
					cp = hex4(p + 2, end);
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						cp = 0x10000 + ((cp - 0xD800) << 10) +
							(hex4(p + 8, end) - 0xDC00);
						p += 6;
					}
					if (cp == 0)
						ereport(ERROR,
								(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
								 errmsg("unsupported Unicode escape sequence"),
								 errdetail("\\u0000 cannot be converted to text.")));
					o = put_code_point(o, cp);
					p += 4;
					break;
				default:		/* " \ / */
					*o++ = p[1];
					break;
			}
			p += 2;
		}
		*o = '\0';
		*len = o - out;
		return out;
	}
	if (*p == '{' || *p == '[')
	{
		/* without white space outside strings */
		out = o = palloc(end - p + 1);
		while (p < end)
		{
			char		c = *p++;

			if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
				continue;
			*o++ = c;
			if (c == '"')
			{
				while (*p != '"')
				{
					if (*p == '\\')
						*o++ = *p++;
					*o++ = *p++;
				}
				*o++ = *p++;
			}
		}
		*o = '\0';
		*len = o - out;
		return out;
	}
	/* numbers, true, false; strings for JSON columns */
	*len = end - p;
	return pnstrdup(p, end - p);
}

/* n decimal digits at s, or -1 */
static int
digits(const char *s, int n)
{
	int			v = 0;

	while (n-- > 0)
	{
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s++ - '0');
	}
	return v;
}

/*
 * mfgsync_fdw_iso_timestamptz
 *		The usual shape of API date-times, YYYY-MM-DDTHH:MM:SS[.ffffff]
 *		followed by Z or +HH:MM/-HH:MM, converted without the general
 *		date-time parser.  Returns false for anything else (other shapes,
 *		out-of-range fields, 24:00:00, leap seconds): the caller then uses
 *		timestamptz_in, which accepts or rejects it as always.
 */
bool
mfgsync_fdw_iso_timestamptz(const char *s, int len, TimestampTz *result)
{
	struct pg_tm tm;
	fsec_t		fsec = 0;
	int			tz = 0;
	int			i = 19;

	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
		s[13] != ':' || s[16] != ':')
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = digits(s, 4);
	tm.tm_mon = digits(s + 5, 2);
	tm.tm_mday = digits(s + 8, 2);
	tm.tm_hour = digits(s + 11, 2);
	tm.tm_min = digits(s + 14, 2);
	tm.tm_sec = digits(s + 17, 2);
	if (tm.tm_year < 1 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
		tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1] ||
		tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
		tm.tm_sec < 0 || tm.tm_sec > 59)
		return false;
	if (s[i] == '.')
	{
		int			scale = 100000;

		i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			return false;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		{
			if (scale == 0)
				return false;	/* rounding of more digits: the slow path */
			fsec += (s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i == len - 1 && s[i] == 'Z')
		tz = 0;
	else if (i == len - 6 && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':')
	{
		int			h = digits(s + i + 1, 2);
		int			m = digits(s + i + 4, 2);

		if (h < 0 || h > 15 || m < 0 || m > 59)
			return false;
		/* seconds west of Greenwich */
		tz = (h * 3600 + m * 60) * (s[i] == '+' ? -1 : 1);
	}
	else
		return false;
	if (tm2timestamp(&tm, fsec, &tz, result) != 0 ||
		!IS_VALID_TIMESTAMP(*result))
		return false;
	return true;
}
