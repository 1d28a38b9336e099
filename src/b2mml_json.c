/*-------------------------------------------------------------------------
 *
 * b2mml_json.c
 *		  B2MML-JSON: the two JSON dialects to and from the libxml2 tree
 *
 * Every B2MML document inside mfgsync is a libxml2 tree.  This file is the
 * one place where JSON meets that tree, in both directions:
 *
 *	 - mfgsync_b2mml_json_to_doc reads either dialect (MESA's B2MML-JSON,
 *	   where repeatable elements are always arrays, or edinn's, where a
 *	   single occurrence is an object and an empty element is []) into the
 *	   tree the equivalent XML would give, every element in the B2MML V0600
 *	   namespace.  It is lenient the way edinn needs (REFERENCE.md, 7 and
 *	   9): "...Id" names become "...ID", the Any/UserArea block is dropped,
 *	   [] is an absent element (a present one for a verb), "#text" is taken
 *	   for "$";
 *	 - mfgsync_b2mml_doc_to_json writes a tree in either dialect (or as
 *	   XML), so that XML and JSON always say the same.
 *
 * Neither raises an error for bad input; both raise on out of memory.
 * json-c and libxml2 allocate with malloc: every json_object made here is
 * released on both the normal and the error path, and a tree is handed to
 * the caller only when complete.
 *
 * The Business To Manufacturing Markup Language (B2MML) is used courtesy
 * of MESA International.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/b2mml_json.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include <json-c/json.h>

#include "b2mml.h"

/* JSON nesting allowed (MESA's dialect uses two levels per element) */
#define JSON_MAX_DEPTH 128

/* ---------------------------------------------------------------------
 * JSON text (either dialect) -> XML tree: the lenient reader
 * ---------------------------------------------------------------------
 */

/*
 * The element name for a JSON key: edinn writes some names with "Id" where
 * B2MML has "ID" (ProcessSegmentId); B2MML has no name ending in "Id".
 */
static char *
json_element_name(const char *key)
{
	size_t		len = strlen(key);
	char	   *name = pstrdup(key);

	if (len >= 2 && strcmp(key + len - 2, "Id") == 0)
		name[len - 1] = 'D';
	return name;
}

/* is name one of the verbs of the messages mfgsync exchanges? */
static bool
is_verb(const char *name)
{
	return strcmp(name, "Sync") == 0 || strcmp(name, "Cancel") == 0 ||
		strcmp(name, "Get") == 0 || strcmp(name, "Confirm") == 0;
}

static bool json_fill_element(xmlNodePtr elem, json_object *val, int depth,
							  char **why);

/* append the element(s) a JSON member stands for to parent */
static bool
json_add_member(xmlNodePtr parent, const char *key, json_object *val,
				int depth, char **why)
{
	char	   *name;

	if (depth > JSON_MAX_DEPTH)
	{
		*why = psprintf("not well-formed JSON: nested deeper than %d levels",
						JSON_MAX_DEPTH);
		return false;
	}
	/* edinn's extension block (Any/UserArea): not part of V0600 */
	if (strcmp(key, "Any") == 0)
		return true;
	name = json_element_name(key);
	if (xmlValidateNCName((const xmlChar *) name, 0) != 0)
	{
		*why = psprintf("not well-formed JSON: \"%s\" in %s is not an element name",
						key, parent->name);
		return false;
	}
	switch (json_object_get_type(val))
	{
		case json_type_null:
			return true;		/* nil: absent */
		case json_type_array:
			{
				size_t		n = json_object_array_length(val);

				/*
				 * edinn writes empty elements as []: absent, except a verb,
				 * whose presence is what counts ("Get": [] is <Get/>)
				 */
				if (n == 0 && is_verb(name))
					xmlNewChild(parent, parent->ns, (const xmlChar *) name, NULL);
				for (size_t i = 0; i < n; i++)
				{
					json_object *item = json_object_array_get_idx(val, i);
					xmlNodePtr	elem;

					if (item == NULL)
						continue;
					if (json_object_get_type(item) == json_type_array)
					{
						*why = psprintf("not well-formed JSON: \"%s\" in %s is an array of arrays",
										key, parent->name);
						return false;
					}
					elem = xmlNewChild(parent, parent->ns, (const xmlChar *) name, NULL);
					if (!json_fill_element(elem, item, depth + 1, why))
						return false;
				}
				return true;
			}
		default:
			{
				xmlNodePtr	elem = xmlNewChild(parent, parent->ns,
											   (const xmlChar *) name, NULL);

				return json_fill_element(elem, val, depth + 1, why);
			}
	}
}

/* give elem the attributes, text and children of a JSON value */
static bool
json_fill_element(xmlNodePtr elem, json_object *val, int depth, char **why)
{
	if (json_object_get_type(val) != json_type_object)
	{
		if (json_object_get_type(val) != json_type_null)
			xmlNodeAddContent(elem, (const xmlChar *) json_object_get_string(val));
		return true;
	}
	{
	json_object_object_foreach(val, key, member)
	{
		if (key[0] == '@')
		{
			if (member == NULL || json_object_get_type(member) == json_type_null)
				continue;
			if (json_object_get_type(member) == json_type_object ||
				json_object_get_type(member) == json_type_array)
			{
				*why = psprintf("not well-formed JSON: attribute \"%s\" of %s is not a string",
								key, elem->name);
				return false;
			}
			if (xmlValidateNCName((const xmlChar *) key + 1, 0) != 0)
			{
				*why = psprintf("not well-formed JSON: \"%s\" in %s is not an attribute name",
								key, elem->name);
				return false;
			}
			xmlSetProp(elem, (const xmlChar *) key + 1,
					   (const xmlChar *) json_object_get_string(member));
		}
		else if (strcmp(key, "$") == 0 || strcmp(key, "#text") == 0)
		{
			if (member != NULL && json_object_get_type(member) != json_type_null)
			{
				if (json_object_get_type(member) == json_type_object ||
					json_object_get_type(member) == json_type_array)
				{
					*why = psprintf("not well-formed JSON: the text of %s is not a string",
									elem->name);
					return false;
				}
				xmlNodeAddContent(elem, (const xmlChar *) json_object_get_string(member));
			}
		}
		else if (member != NULL &&
				 !json_add_member(elem, key, member, depth, why))
			return false;
	}
	}
	return true;
}

/*
 * MESA's dialect writes every repeatable element as an array, so the nouns
 * under DataArea are arrays; edinn writes a single noun as an object.
 */
static B2mmlDialect
json_dialect(json_object *rootval)
{
	json_object *da;

	if (json_object_get_type(rootval) == json_type_object &&
		json_object_object_get_ex(rootval, "DataArea", &da) &&
		json_object_get_type(da) == json_type_object)
	{
		json_object_object_foreach(da, key, member)
		{
			if (member != NULL && json_object_get_type(member) == json_type_array &&
				json_object_array_length(member) > 0 &&
				!is_verb(key))
				return B2MML_JSON_MESA;
		}
	}
	return B2MML_JSON_EDINN;
}

/*
 * mfgsync_b2mml_json_to_doc
 *		A B2MML-JSON message (either dialect) as the tree its XML would give.
 *
 * text is UTF-8 and starts with the JSON value.  On success *dialect says
 * which dialect it is in, and the caller frees the tree with xmlFreeDoc.
 * On failure returns NULL with *why (palloc'd) set to a one-line reason
 * that starts "not well-formed JSON".  Raises only on out of memory.
 */
xmlDocPtr
mfgsync_b2mml_json_to_doc(const char *text, int len, B2mmlDialect *dialect,
						  char **why)
{
	json_tokener *tok;
	json_object *jroot;
	volatile xmlDocPtr doc = NULL;
	enum json_tokener_error jerr;

	*dialect = B2MML_JSON_MESA;
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	jroot = json_tokener_parse_ex(tok, text, len);
	jerr = json_tokener_get_error(tok);
	if (jroot != NULL && jerr == json_tokener_success &&
		tok->char_offset < len)
	{
		/* only white space may follow the value */
		for (int i = tok->char_offset; i < len; i++)
			if (!isspace((unsigned char) text[i]))
			{
				*why = psprintf("not well-formed JSON: unexpected text after the document (offset %d)", i);
				json_object_put(jroot);
				json_tokener_free(tok);
				return NULL;
			}
	}
	if (jroot == NULL || jerr != json_tokener_success)
	{
		*why = psprintf("not well-formed JSON: %s (offset %d)",
						jerr == json_tokener_continue ? "unexpected end of input" :
						json_tokener_error_desc(jerr), (int) tok->char_offset);
		if (jroot)
			json_object_put(jroot);
		json_tokener_free(tok);
		return NULL;
	}
	json_tokener_free(tok);

	PG_TRY();
	{
		if (json_object_get_type(jroot) != json_type_object ||
			json_object_object_length(jroot) != 1)
			*why = pstrdup("not well-formed JSON: the document must be an object with exactly one member, the root element");
		else
		{
			json_object_object_foreach(jroot, key, rootval)
			{
				char	   *name = json_element_name(key);
				xmlNodePtr	root;
				xmlNsPtr	ns;

				*dialect = json_dialect(rootval);
				if (xmlValidateNCName((const xmlChar *) name, 0) != 0)
				{
					*why = psprintf("not well-formed JSON: \"%s\" is not an element name", key);
					break;
				}
				if (rootval == NULL || json_object_get_type(rootval) != json_type_object)
				{
					*why = psprintf("not well-formed JSON: the value of \"%s\" must be an object", key);
					break;
				}
				doc = xmlNewDoc((const xmlChar *) "1.0");
				root = xmlNewDocNode(doc, NULL, (const xmlChar *) name, NULL);
				xmlDocSetRootElement(doc, root);
				ns = xmlNewNs(root, (const xmlChar *) MFGSYNC_B2MML_NS, NULL);
				xmlSetNs(root, ns);
				if (!json_fill_element(root, rootval, 1, why))
				{
					xmlFreeDoc(doc);
					doc = NULL;
				}
			}
		}
	}
	PG_FINALLY();
	{
		json_object_put(jroot);
	}
	PG_END_TRY();
	return doc;
}


/* ---------------------------------------------------------------------
 * XML tree -> JSON text (either dialect) or XML text
 * ---------------------------------------------------------------------
 */

/* elements with maxOccurs > 1 in the V0600 schemas mfgsync exchanges */
static const char *const repeatable[] = {
	"ActionCriteria", "ActionExpression", "AssemblyActual",
	"AssemblyRequirement", "AssemblylDefinitionID", "BOD",
	"ConsumableActual", "ConsumableExpectedRequirement", "Description",
	"EquipmentActual", "EquipmentActualProperty", "EquipmentClassID",
	"EquipmentID", "EquipmentRequirement", "EquipmentRequirementProperty",
	"Expression", "ID", "MaterialActual", "MaterialActualProperty",
	"MaterialClass", "MaterialClassID", "MaterialConsumedActual",
	"MaterialConsumedRequirement", "MaterialDefinition",
	"MaterialDefinitionID", "MaterialDefinitionProperty",
	"MaterialInformation", "MaterialLot", "MaterialLotID",
	"MaterialLotProperty", "MaterialProducedActual",
	"MaterialProducedRequirement", "MaterialRequirement",
	"MaterialRequirementProperty", "MaterialSubLot", "MaterialSubLotID",
	"MaterialTestSpecification", "MaterialTestSpecificationID", "Note",
	"PersonnelActual", "PersonnelRequirement", "PhysicalAssetActual",
	"PhysicalAssetRequirement", "ProcessSegmentID", "ProductSegmentID",
	"ProductProductionRuleID", "ProductionData", "ProductionParameter",
	"ProductionPerformance", "ProductionRequest", "ProductionResponse",
	"ProductionSchedule", "Quantity", "Reason", "Receiver",
	"ResponseCriteria", "SegmentRequirement", "SegmentResponse",
	"StateChange", "Value", "Version"
};

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* may this child occur more than once under parent? */
static bool
is_repeatable(const char *parent, const char *name)
{
	const char *key = name;

	if (bsearch(&key, repeatable, lengthof(repeatable), sizeof(char *), cmp_name) == NULL)
		return false;
	/* the few places where one of these names occurs at most once */
	if (strcmp(name, "ID") == 0)
		return strcmp(parent, "Receiver") == 0;
	if (strcmp(name, "Description") == 0)
		return strcmp(parent, "ChangeStatus") != 0;
	if (strcmp(name, "EquipmentID") == 0)
		return strcmp(parent, "Location") != 0 && strcmp(parent, "HierarchyScope") != 0;
	if (strcmp(name, "ProcessSegmentID") == 0 || strcmp(name, "ProductSegmentID") == 0)
		return strcmp(parent, "SegmentResponse") == 0;
	if (strcmp(name, "MaterialDefinitionID") == 0)
		return strcmp(parent, "MaterialLot") != 0;
	return true;
}

/* how many element children of n are named name */
static int
count_named(xmlNodePtr n, const char *name)
{
	xmlNodePtr	c;
	int			count = 0;

	for (c = n->children; c; c = c->next)
		if (mfgsync_b2mml_is_element(c, name))
			count++;
	return count;
}

/* the value of element n: string, object, or (edinn) [] when empty */
static json_object *
element_to_json(xmlNodePtr n, B2mmlDialect dialect)
{
	json_object *obj;
	xmlAttrPtr	a;
	xmlNodePtr	c;
	bool		has_children = false;

	for (c = n->children; c; c = c->next)
		if (mfgsync_b2mml_is_element(c, NULL))
			has_children = true;

	if (n->properties == NULL && !has_children)
	{
		xmlChar    *t = xmlNodeGetContent(n);
		json_object *v;

		if (t == NULL || t[0] == '\0')
			v = dialect == B2MML_JSON_EDINN ? json_object_new_array() :
				json_object_new_object();
		else
			v = json_object_new_string((const char *) t);
		xmlFree(t);
		return v;
	}

	obj = json_object_new_object();
	for (a = n->properties; a; a = a->next)
	{
		xmlChar    *v = xmlNodeListGetString(n->doc, a->children, 1);
		char	   *key = psprintf("@%s", (const char *) a->name);

		/* the namespace's own attributes are dropped, as MESA does */
		json_object_object_add(obj, key, json_object_new_string(v ? (const char *) v : ""));
		pfree(key);
		xmlFree(v);
	}
	if (!has_children)
	{
		xmlChar    *t = xmlNodeGetContent(n);

		if (t != NULL && t[0] != '\0')
			json_object_object_add(obj, "$", json_object_new_string((const char *) t));
		xmlFree(t);
		return obj;
	}
	for (c = n->children; c; c = c->next)
	{
		const char *name;
		json_object *v;

		if (!mfgsync_b2mml_is_element(c, NULL))
			continue;
		name = (const char *) c->name;
		v = element_to_json(c, dialect);
		if (is_repeatable((const char *) n->name, name) &&
			(dialect == B2MML_JSON_MESA || count_named(n, name) > 1))
		{
			json_object *arr;

			if (!json_object_object_get_ex(obj, name, &arr))
			{
				arr = json_object_new_array();
				json_object_object_add(obj, name, arr);
			}
			json_object_array_add(arr, v);
		}
		else
			json_object_object_add(obj, name, v);
	}
	return obj;
}

/*
 * mfgsync_b2mml_doc_to_json
 *		doc as B2MML-JSON in the given dialect: {"<root>": {...}}, attributes
 *		as "@name", text beside attributes as "$", namespaces dropped;
 *		repeatable elements always arrays (MESA) or arrays only when they
 *		occur more than once (edinn, where empty elements are []).
 *
 * Returns a palloc'd string in CurrentMemoryContext; B2MML_XML gives the
 * XML serialization.  doc stays the caller's.
 */
char *
mfgsync_b2mml_doc_to_json(xmlDocPtr doc, B2mmlDialect dialect)
{
	xmlNodePtr	root = xmlDocGetRootElement(doc);
	json_object *top;
	json_object *volatile holder = NULL;
	char	   *volatile result = NULL;

	if (dialect == B2MML_XML)
	{
		xmlChar    *mem;
		int			size;

		xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
		if (mem == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not serialize a B2MML document")));
		result = pnstrdup((const char *) mem, size);
		xmlFree(mem);
		return result;
	}
	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("B2MML document has no root element")));

	PG_TRY();
	{
		holder = json_object_new_object();
		top = element_to_json(root, dialect);
		json_object_object_add(holder, (const char *) root->name, top);
		result = pstrdup(json_object_to_json_string_ext(holder,
														JSON_C_TO_STRING_PLAIN |
														JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	PG_FINALLY();
	{
		if (holder)
			json_object_put(holder);
	}
	PG_END_TRY();
	return result;
}
