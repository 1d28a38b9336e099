/*-------------------------------------------------------------------------
 *
 * b2mml_check.c
 *		  Inbound B2MML: the checks of a message's elements
 *
 * receive_b2mml rejects what a B2MML V0600 receiver must not apply, with
 * the first problem as the Description of its Rejected ConfirmBOD.  This
 * file has the checks that look at elements anywhere in the message, so
 * they apply to JSON as well as XML: namespace, xs:dateTime values
 * (edinn's local times without an offset are valid), quantities and the
 * enumerations of REFERENCE.md, 7.  The structure of the message (root,
 * ApplicationArea, verb, nouns, action codes) is checked in b2mml_in.c.
 * XML messages are also validated against the XSD named by
 * mfgsync.b2mml_schema, which is loaded once per backend and kept until the
 * setting names another file.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml_check.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "b2mml.h"
#include "b2mml_in.h"

/* elements of type xs:dateTime in the messages above */
static const char *const datetime_elements[] = {
	"CreationDateTime", "PublishedDate", "StartTime", "EndTime",
	"ActualStartTime", "ActualEndTime", "EarliestStartTime",
	"LatestEndTime", "EffectiveDateTime", NULL
};

/* enumerations the reader checks (XSD validation checks all of them) */
typedef struct InEnum
{
	const char *element;
	const char *parent_suffix;	/* parent's name ends so, or NULL: any */
	const char *values[12];
} InEnum;

static const InEnum in_enums[] = {
	{"ConfirmationCode", NULL, {"Always", "Never", "OnError", NULL}},
	{"SegmentState", "Response",
	{"Ready", "Running", "Completed", "Aborted", "Holding", "Paused", "Other", NULL}},
	{"ResponseState", NULL,
	{"Ready", "Running", "Completed", "Aborted", "Holding", "Paused", "Other", NULL}},
	{"SegmentState", "Requirement", {"Forecast", "Released", "Other", NULL}},
	{"RequestState", NULL, {"Forecast", "Released", "Other", NULL}},
	{"MaterialUse", NULL,
	{"Consumed", "Produced", "Consumable", "Replaced Assetn",
	"Replacement Asset", "Sample", "Resurned Sample", "Carrier",
	"Returned Carrier", "Other", NULL}},
};

static bool
digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	return true;
}

static int
num(const char *s, int n)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/*
 * Is s an xs:dateTime: [-]YYYY-MM-DDThh:mm:ss[.f+][Z|(+|-)hh:mm]?  A value
 * without a time zone is valid (edinn sends local time).
 */
static bool
valid_datetime(const char *s)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			ylen = 0;
	int			year,
				month,
				day,
				hour,
				minute,
				second;

	if (*s == '-')
		s++;
	while (isdigit((unsigned char) s[ylen]))
		ylen++;
	if (ylen < 4 || (ylen > 4 && s[0] == '0'))
		return false;
	year = ylen > 9 ? 1 : num(s, ylen);
	s += ylen;
	if (s[0] != '-' || !digits(s + 1, 2) || s[3] != '-' || !digits(s + 4, 2) ||
		s[6] != 'T' || !digits(s + 7, 2) || s[9] != ':' || !digits(s + 10, 2) ||
		s[12] != ':' || !digits(s + 13, 2))
		return false;
	month = num(s + 1, 2);
	day = num(s + 4, 2);
	hour = num(s + 7, 2);
	minute = num(s + 10, 2);
	second = num(s + 13, 2);
	if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1])
		return false;
	if (month == 2 && day == 29 &&
		!((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return false;
	if (minute > 59 || second > 59 || hour > 24)
		return false;
	s += 15;
	if (*s == '.')
	{
		if (!isdigit((unsigned char) s[1]))
			return false;
		s++;
		while (isdigit((unsigned char) *s))
			s++;
	}
	if (hour == 24 && (minute != 0 || second != 0))
		return false;
	if (*s == '\0')
		return true;
	if (s[0] == 'Z')
		return s[1] == '\0';
	if ((s[0] == '+' || s[0] == '-') && digits(s + 1, 2) && s[3] == ':' &&
		digits(s + 4, 2) && s[6] == '\0')
	{
		int			th = num(s + 1, 2);
		int			tm = num(s + 4, 2);

		return tm <= 59 && (th < 14 || (th == 14 && tm == 0));
	}
	return false;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t		a = strlen(s);
	size_t		b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/*
 * mfgsync_b2mml_check_tree
 *		The first problem in node's subtree, palloc'd, or NULL: elements
 *		outside the B2MML V0600 namespace (XML only: JSON has none),
 *		date-times that are not xs:dateTime, Quantity without
 *		QuantityString, Value without ValueString, codes outside the
 *		enumerations above.  Raises nothing for bad input.
 */
char *
mfgsync_b2mml_check_tree(xmlNodePtr node, bool xml)
{
	const char *name = (const char *) node->name;

	if (xml && (node->ns == NULL || strcmp((const char *) node->ns->href, MFGSYNC_B2MML_NS) != 0))
		return psprintf("wrong namespace: element %s is in %s%s%s, not in \"%s\"",
						mfgsync_b2mml_path(node),
						node->ns ? "namespace \"" : "no namespace",
						node->ns ? (const char *) node->ns->href : "",
						node->ns ? "\"" : "", MFGSYNC_B2MML_NS);

	for (int i = 0; datetime_elements[i]; i++)
		if (strcmp(name, datetime_elements[i]) == 0)
		{
			char	   *v = mfgsync_b2mml_text(node);

			if (v == NULL || !valid_datetime(v))
				return psprintf("bad date-time: %s is \"%s\", not an xs:dateTime such as 2024-05-06T08:00:00Z",
								mfgsync_b2mml_path(node), v ? v : "");
		}

	if (strcmp(name, "Quantity") == 0 && mfgsync_b2mml_child(node, "QuantityString") == NULL)
		return psprintf("invalid quantity: %s has no QuantityString", mfgsync_b2mml_path(node));
	if (strcmp(name, "Value") == 0 && mfgsync_b2mml_child(node, "ValueString") == NULL)
		return psprintf("invalid value: %s has no ValueString", mfgsync_b2mml_path(node));

	for (int i = 0; i < lengthof(in_enums); i++)
	{
		const InEnum *e = &in_enums[i];
		char	   *v;
		bool		found = false;
		StringInfoData allowed;

		if (strcmp(name, e->element) != 0 ||
			(e->parent_suffix && !(node->parent &&
								   ends_with((const char *) node->parent->name,
											 e->parent_suffix))))
			continue;
		v = mfgsync_b2mml_text(node);
		for (int j = 0; e->values[j]; j++)
			if (v && strcmp(v, e->values[j]) == 0)
				found = true;
		if (found)
			break;
		initStringInfo(&allowed);
		for (int j = 0; e->values[j]; j++)
			appendStringInfo(&allowed, "%s%s", j ? ", " : "", e->values[j]);
		return psprintf("invalid code: %s is \"%s\"; allowed: %s (case matters; other codes go in OtherValue with Other)",
						mfgsync_b2mml_path(node), v ? v : "", allowed.data);
	}

	for (xmlNodePtr c = node->children; c; c = c->next)
	{
		char	   *why;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		why = mfgsync_b2mml_check_tree(c, xml);
		if (why)
			return why;
	}
	return NULL;
}

/* the schema mfgsync.b2mml_schema names, loaded once per backend */
static xmlSchemaPtr schema = NULL;
static char *schema_setting = NULL; /* the setting it was loaded for, in
									 * TopMemoryContext */

/*
 * schema_file
 *		The file a mfgsync.b2mml_schema value names: a leading "$sharedir"
 *		is this installation's share directory, where the extension installs
 *		MESA's schemas (extension/mfgsync/b2mml/), as "$libdir" works in
 *		dynamic_library_path.
 */
static char *
schema_file(const char *setting)
{
	char		sharedir[MAXPGPATH];

	if (strncmp(setting, "$sharedir", 9) != 0)
		return pstrdup(setting);
	get_share_path(my_exec_path, sharedir);
	return psprintf("%s%s", sharedir, setting + 9);
}

/*
 * mfgsync_b2mml_check_schema
 *		XSD validation of an XML message against mfgsync.b2mml_schema (none
 *		when it is empty): the first error, palloc'd, or NULL.  Raises
 *		config_file_error when the schema cannot be loaded.
 */
char *
mfgsync_b2mml_check_schema(xmlDocPtr doc)
{
	xmlSchemaValidCtxtPtr vctxt;
	int			rc;

	if (mfgsync_b2mml_schema == NULL || mfgsync_b2mml_schema[0] == '\0')
		return NULL;

	if (schema == NULL || strcmp(schema_setting, mfgsync_b2mml_schema) != 0)
	{
		xmlSchemaParserCtxtPtr pctxt;
		xmlExternalEntityLoader saved_loader = xmlGetExternalEntityLoader();
		char	   *schema_path;

		if (schema)
			xmlSchemaFree(schema);
		schema = NULL;
		if (schema_setting)
			pfree(schema_setting);
		schema_setting = MemoryContextStrdup(TopMemoryContext, mfgsync_b2mml_schema);
		schema_path = schema_file(schema_setting);

		/*
		 * The schema includes its parts from files next to it.  PostgreSQL's
		 * XML functions install a loader that refuses all external files, so
		 * use libxml2's local-files-only loader while parsing.
		 */
		mfgsync_b2mml_xml_error_reset();
		xmlSetExternalEntityLoader(xmlNoNetExternalEntityLoader);
		pctxt = xmlSchemaNewParserCtxt(schema_path);
		if (pctxt)
		{
			xmlSchemaSetParserStructuredErrors(pctxt, mfgsync_b2mml_xml_error_handler, NULL);
			schema = xmlSchemaParse(pctxt);
			xmlSchemaFreeParserCtxt(pctxt);
		}
		xmlSetExternalEntityLoader(saved_loader);
		if (schema == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("could not load the B2MML schema \"%s\"", schema_path),
					 errdetail("%s", mfgsync_b2mml_xml_error_text()),
					 errhint("Set mfgsync.b2mml_schema to '$sharedir/extension/mfgsync/b2mml/mfgsync-b2mml-V0600.xsd' (installed with mfgsync), another copy of it, or an empty string.")));
	}

	mfgsync_b2mml_xml_error_reset();
	vctxt = xmlSchemaNewValidCtxt(schema);
	if (vctxt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	xmlSchemaSetValidStructuredErrors(vctxt, mfgsync_b2mml_xml_error_handler, NULL);
	rc = xmlSchemaValidateDoc(vctxt, doc);
	xmlSchemaFreeValidCtxt(vctxt);
	if (rc != 0)
		return psprintf("not valid B2MML V0600: %s", mfgsync_b2mml_xml_error_text());
	return NULL;
}
