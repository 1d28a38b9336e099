/*-------------------------------------------------------------------------
 *
 * b2mml_read.c
 *		  Reading B2MML: one reader of XML and JSON text, the tree helpers,
 *		  and the ConfirmBOD
 *
 * mfgsync_b2mml_read is the only way B2MML text becomes a libxml2 tree:
 * receive_b2mml, the senders' synchronous replies, b2mml_confirm,
 * b2mml_convert and the mapping hooks' fragments all go through it.  It
 * takes XML or JSON in either dialect (the JSON half is in b2mml_json.c),
 * so everything after it sees one kind of document.
 *
 * Invariants:
 *	 - XML is parsed without network access (XML_PARSE_NONET), without
 *	   loading a DTD and without substituting entities, and a document with
 *	   a DOCTYPE is refused after parsing; nothing outside the text is ever
 *	   read;
 *	 - bad input never raises an error: the reader returns NULL and a
 *	   one-line reason, which callers put into a Rejected ConfirmBOD, a
 *	   dead letter or their own ereport.  Only out of memory raises;
 *	 - it needs no transaction (the senders call it outside one).
 *
 * libxml2 reports errors through a callback; the first error of an
 * operation is kept in a static buffer (one backend runs one operation at
 * a time), with the handler swapped in and restored around the call.
 *
 * The Business To Manufacturing Markup Language (B2MML) is used courtesy
 * of MESA International.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml_read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"

#include "b2mml.h"

/* ----------------------------------------------------------------
 * libxml2 errors: the first one of an operation is kept
 * ----------------------------------------------------------------
 */
static char xml_first_error[1024];

/*
 * mfgsync_b2mml_xml_error_handler
 *		A libxml2 structured error handler (xmlStructuredErrorFunc) that
 *		keeps the first error of an operation, on one line, with its line
 *		number.  Warnings are ignored.
 */
void
mfgsync_b2mml_xml_error_handler(void *ctx, xmlErrorPtr error)
{
	size_t		len;

	if (error == NULL || error->level < XML_ERR_ERROR ||
		xml_first_error[0] != '\0' || error->message == NULL)
		return;
	strlcpy(xml_first_error, error->message, sizeof(xml_first_error));
	/* libxml2 ends messages with a newline; a Description is one line */
	len = strlen(xml_first_error);
	while (len > 0 && isspace((unsigned char) xml_first_error[len - 1]))
		xml_first_error[--len] = '\0';
	for (char *p = xml_first_error; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (error->line > 0)
		snprintf(xml_first_error + len, sizeof(xml_first_error) - len,
				 " (line %d)", error->line);
}

/*
 * mfgsync_b2mml_xml_error_text
 *		The kept error, palloc'd, without the "{namespace}" libxml2 puts in
 *		front of element names; "unknown error" when none was kept.
 */
char *
mfgsync_b2mml_xml_error_text(void)
{
	StringInfoData buf;
	const char *p = xml_first_error;
	const char *hit;
	const char *ns = "{" MFGSYNC_B2MML_NS "}";

	initStringInfo(&buf);
	while ((hit = strstr(p, ns)) != NULL)
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		p = hit + strlen(ns);
	}
	appendStringInfoString(&buf, p);
	if (buf.len == 0)
		appendStringInfoString(&buf, "unknown error");
	return buf.data;
}

/*
 * mfgsync_b2mml_xml_error_reset
 *		Forget the kept error, before an operation whose errors go to
 *		mfgsync_b2mml_xml_error_handler.
 */
void
mfgsync_b2mml_xml_error_reset(void)
{
	xml_first_error[0] = '\0';
}

/* ----------------------------------------------------------------
 * Tree helpers: elements are found by local name, in any namespace
 * ----------------------------------------------------------------
 */

/* is n an element, named name (any name when name is NULL)? */
bool
mfgsync_b2mml_is_element(xmlNodePtr n, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
		(name == NULL || strcmp((const char *) n->name, name) == 0);
}

/* the first element child of parent named name (NULL: any), or NULL */
xmlNodePtr
mfgsync_b2mml_child(xmlNodePtr parent, const char *name)
{
	if (parent == NULL)
		return NULL;
	for (xmlNodePtr c = parent->children; c; c = c->next)
		if (mfgsync_b2mml_is_element(c, name))
			return c;
	return NULL;
}

/* the next element sibling of node named name (NULL: any), or NULL */
xmlNodePtr
mfgsync_b2mml_next(xmlNodePtr node, const char *name)
{
	for (xmlNodePtr c = node->next; c; c = c->next)
		if (mfgsync_b2mml_is_element(c, name))
			return c;
	return NULL;
}

/*
 * The text of node (NULL: none), trimmed, palloc'd; NULL when node is NULL
 * or its text is empty or white space.
 */
char *
mfgsync_b2mml_text(xmlNodePtr node)
{
	xmlChar    *content;
	char	   *s;
	char	   *end;
	char	   *result;

	if (node == NULL)
		return NULL;
	content = xmlNodeGetContent(node);
	if (content == NULL)
		return NULL;
	s = (char *) content;
	while (*s && isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		end--;
	result = end > s ? pnstrdup(s, end - s) : NULL;
	xmlFree(content);
	return result;
}

/* the trimmed text of parent's first child named name, as above */
char *
mfgsync_b2mml_child_text(xmlNodePtr parent, const char *name)
{
	return mfgsync_b2mml_text(mfgsync_b2mml_child(parent, name));
}

/* node's attribute name (in no namespace), palloc'd, or NULL if absent */
char *
mfgsync_b2mml_attr(xmlNodePtr node, const char *name)
{
	xmlChar    *v = xmlGetNoNsProp(node, (const xmlChar *) name);
	char	   *result;

	if (v == NULL)
		return NULL;
	result = pstrdup((const char *) v);
	xmlFree(v);
	return result;
}
/*
 * Where node is, palloc'd: "/SyncProductionPerformance/DataArea/
 * ProductionPerformance/...", with [n] where an element has siblings of its
 * name.  For the Descriptions of rejections.
 */
char *
mfgsync_b2mml_path(xmlNodePtr node)
{
	char	   *path = pstrdup("");

	for (; node && node->type == XML_ELEMENT_NODE; node = node->parent)
	{
		int			pos = 0;
		int			count = 0;

		for (xmlNodePtr c = node->parent ? node->parent->children : node; c; c = c->next)
			if (mfgsync_b2mml_is_element(c, (const char *) node->name))
			{
				count++;
				if (c == node)
					pos = count;
			}
		if (count > 1)
			path = psprintf("/%s[%d]%s", node->name, pos, path);
		else
			path = psprintf("/%s%s", node->name, path);
	}
	return path;
}

/*
 * A new element name under parent, in parent's namespace, with text (NULL:
 * none; escaped as needed).  Returns the element.
 */
xmlNodePtr
mfgsync_b2mml_add(xmlNodePtr parent, const char *name, const char *text)
{
	return xmlNewTextChild(parent, parent->ns, (const xmlChar *) name,
						   (const xmlChar *) text);
}

/* ----------------------------------------------------------------
 * The reader
 * ----------------------------------------------------------------
 */

/*
 * XML: libxml2 without network access, DTDs or entity substitution; text in
 * encoding, or (NULL) in the encoding its declaration names, else UTF-8
 */
static xmlDocPtr
read_xml(const char *text, int len, const char *encoding, char **why)
{
	xmlParserCtxtPtr ctxt;
	xmlDocPtr	doc;
	xmlStructuredErrorFunc saved_handler = xmlStructuredError;
	void	   *saved_context = xmlStructuredErrorContext;

	mfgsync_b2mml_xml_error_reset();
	xmlSetStructuredErrorFunc(NULL, mfgsync_b2mml_xml_error_handler);
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		doc = NULL;
	else
	{
		doc = xmlCtxtReadMemory(ctxt, text, len, NULL, encoding,
								XML_PARSE_NONET | XML_PARSE_NOBLANKS);
		if (doc != NULL && !ctxt->wellFormed)
		{
			xmlFreeDoc(doc);
			doc = NULL;
		}
		xmlFreeParserCtxt(ctxt);
	}
	xmlSetStructuredErrorFunc(saved_context, saved_handler);

	if (doc == NULL)
	{
		if (ctxt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*why = psprintf("not well-formed XML: %s", mfgsync_b2mml_xml_error_text());
		return NULL;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL)
	{
		xmlFreeDoc(doc);
		*why = pstrdup("not well-formed B2MML: DOCTYPE declarations are not accepted");
		return NULL;
	}
	if (xmlDocGetRootElement(doc) == NULL)
	{
		xmlFreeDoc(doc);
		*why = pstrdup("not well-formed XML: no root element");
		return NULL;
	}
	return doc;
}

/*
 * mfgsync_b2mml_read
 *		A B2MML message, XML or JSON in either dialect, as a libxml2 tree.
 *
 * A UTF-8 byte order mark and white space may come first; '{' or '[' then
 * means JSON (which is UTF-8), anything else XML.  encoding is that of XML
 * text: "UTF-8" for text converted from the database encoding, NULL for
 * bytes from elsewhere (an HTTP reply), which are in the encoding their
 * XML declaration names.  On success *dialect says which syntax the message
 * used and the caller frees the tree with xmlFreeDoc.  On failure returns
 * NULL with *why (palloc'd) set to a one-line reason starting "not
 * well-formed"; *dialect is still the syntax the text looked like.  Raises
 * only on out of memory; needs no transaction.
 */
xmlDocPtr
mfgsync_b2mml_read(const char *text, int len, const char *encoding,
				   B2mmlDialect *dialect, char **why)
{
	int			i = 0;

	/* a UTF-8 byte order mark, then white space */
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < len && isspace((unsigned char) text[i]))
		i++;
	if (i < len && (text[i] == '{' || text[i] == '['))
		return mfgsync_b2mml_json_to_doc(text + i, len - i, dialect, why);

	*dialect = B2MML_XML;
	if (i >= len)
	{
		*why = pstrdup("not well-formed: the message is empty");
		return NULL;
	}
	if (text[i] != '<')
	{
		*why = pstrdup("not well-formed: the message is neither XML nor JSON");
		return NULL;
	}
	return read_xml(text + i, len - i, encoding, why);
}

/* ---------------------------------------------------------------------
 * ConfirmBOD
 * ---------------------------------------------------------------------
 */

/* append the texts of every child of n named name to buf, one a line */
static void
collect(StringInfo buf, xmlNodePtr n, const char *name)
{
	xmlNodePtr	c;

	if (n == NULL)
		return;
	for (c = n->children; c; c = c->next)
	{
		char	   *t;

		if (!mfgsync_b2mml_is_element(c, name))
			continue;
		t = mfgsync_b2mml_text(c);
		if (t == NULL)
			continue;
		if (buf->len > 0)
			appendStringInfoChar(buf, '\n');
		appendStringInfoString(buf, t);
		pfree(t);
	}
}

/*
 * mfgsync_b2mml_read_confirm
 *		What the ConfirmBOD doc says: verdict (ResponseExpression/@actionCode,
 *		Accepted when absent), the original message's BODID and LogicalID
 *		(Confirm/ or BOD/OriginalApplicationArea), BOD/Description (and
 *		ChangeStatus/Description) and BOD/Note.  NO_CONFIRM with error when
 *		doc is not a ConfirmBOD or its actionCode is neither Accepted nor
 *		Rejected.  Strings are palloc'd.
 */
void
mfgsync_b2mml_read_confirm(xmlDocPtr doc, MfgB2mmlConfirm *out)
{
	xmlNodePtr	root = xmlDocGetRootElement(doc);
	xmlNodePtr	data = mfgsync_b2mml_child(root, "DataArea");
	xmlNodePtr	confirm = mfgsync_b2mml_child(data, "Confirm");
	xmlNodePtr	orig = mfgsync_b2mml_child(confirm, "OriginalApplicationArea");
	xmlNodePtr	c;
	StringInfoData desc;
	StringInfoData note;
	char	   *code = NULL;

	memset(out, 0, sizeof(*out));
	if (root == NULL || strcmp((const char *) root->name, "ConfirmBOD") != 0)
	{
		out->error = psprintf("the reply is %s%s, not a ConfirmBOD",
							  root ? "a " : "empty", root ? (const char *) root->name : "");
		return;
	}
	if (confirm == NULL)
	{
		out->error = pstrdup("the ConfirmBOD has no DataArea/Confirm");
		return;
	}

	initStringInfo(&desc);
	initStringInfo(&note);
	for (c = confirm->children; c; c = c->next)
	{
		xmlNodePtr	expr;

		if (!mfgsync_b2mml_is_element(c, "ResponseCriteria"))
			continue;
		expr = mfgsync_b2mml_child(c, "ResponseExpression");
		if (expr != NULL && code == NULL)
		{
			code = mfgsync_b2mml_attr(expr, "actionCode");
			if (code == NULL)
				code = pstrdup("");
		}
		collect(&desc, mfgsync_b2mml_child(c, "ChangeStatus"), "Description");
	}
	for (c = data->children; c; c = c->next)
	{
		if (!mfgsync_b2mml_is_element(c, "BOD"))
			continue;
		if (orig == NULL)
			orig = mfgsync_b2mml_child(c, "OriginalApplicationArea");
		collect(&desc, c, "Description");
		collect(&note, c, "Note");
	}
	out->bodid = mfgsync_b2mml_child_text(orig, "BODID");
	out->logical_id = mfgsync_b2mml_child_text(mfgsync_b2mml_child(orig, "Sender"),
											   "LogicalID");
	out->description = desc.len > 0 ? desc.data : NULL;
	out->note = note.len > 0 ? note.data : NULL;

	if (code == NULL || strcmp(code, "Accepted") == 0)
		out->verdict = MFG_B2MML_ACCEPTED;
	else if (strcmp(code, "Rejected") == 0)
		out->verdict = MFG_B2MML_REJECTED;
	else
		out->error = psprintf("the ConfirmBOD's actionCode \"%s\" is neither Accepted nor Rejected",
							  code);
}

/*
 * mfgsync_b2mml_read_reply
 *		The ConfirmBOD in a synchronous HTTP reply body (XML or JSON), for
 *		the senders: no transaction needed, nothing raised.
 */
void
mfgsync_b2mml_read_reply(const char *body, int len, MfgB2mmlConfirm *out)
{
	char	   *error = NULL;
	B2mmlDialect dialect;
	xmlDocPtr	doc;

	memset(out, 0, sizeof(*out));
	if (len == 0)
	{
		out->error = pstrdup("the reply has no ConfirmBOD (empty body)");
		return;
	}
	doc = mfgsync_b2mml_read(body, len, NULL, &dialect, &error);
	if (doc == NULL)
	{
		out->error = psprintf("the reply has no ConfirmBOD (%s)", error);
		return;
	}
	mfgsync_b2mml_read_confirm(doc, out);
	xmlFreeDoc(doc);
}
