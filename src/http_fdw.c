/*-------------------------------------------------------------------------
 *
 * http_fdw.c
 *		  mfgsync_http: foreign tables over REST/JSON APIs (FDW callbacks)
 *
 * A foreign server is one API, a foreign table one resource, a column a
 * JSON path inside a row.  This file holds the planner and executor
 * callbacks; requests, streaming and paging are in http_fdw_fetch.c.
 *
 * Pushdown: a restriction "col op expr" (op one of =, <, <=, >, >=, or
 * "col = ANY(array)" for IN) where col has a query-parameter option for op
 * and expr does not involve the table becomes a query parameter.  The
 * value is computed when the scan starts, so constants, query parameters
 * and (in parameterized paths for nested-loop joins) outer columns all
 * work.  Every qual is still checked locally too: the API filters what it
 * can, and a sloppy filter in the API can never add wrong rows.  When
 * every qual is pushed, the table is the query's only relation and there
 * is a LIMIT without ORDER BY, the page size shrinks to the limit and no
 * page is requested once the limit is reached.
 *
 * Values are converted through each column's type input function, so any
 * type works; a bad value raises an error naming the column, the row
 * number and the value.
 *
 * Portions Copyright (c) 2026, mfgsync developers
 *
 * IDENTIFICATION
 *		  src/http_fdw.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

/* first: see the note on json-c in http_fdw.h */
#include "http_fdw.h"

#include "access/table.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"


/* rows and requests the planner assumes without better knowledge */
#define MFG_FDW_DEFAULT_ROWS 1000
#define MFG_FDW_PARAM_ROWS 10
#define MFG_FDW_REQUEST_COST 100.0
#define MFG_FDW_ROW_COST 0.01

/* a pushable clause: column, operator and the value expression */
#define MFG_OP_IN 5

typedef struct PushedQual
{
	MfgFdwColumn *col;
	int			op;				/* MFG_OP_* or MFG_OP_IN */
	Expr	   *value;
} PushedQual;

/* planner state in baserel->fdw_private */
typedef struct MfgFdwPlanState
{
	MfgFdwTable *t;
	bool		all_pushed;		/* every restriction became a parameter */
} MfgFdwPlanState;

/* one column's conversion */
typedef struct MfgFdwColumnIn
{
	MfgFdwColumn *col;			/* NULL: not in the table's options */
	FmgrInfo	input;			/* the type's input function */
	Oid			ioparam;
	int32		typmod;
	bool		is_json;		/* json or jsonb: values as JSON text */
	char		fast;			/* 't': text, 'z': timestamptz; 0: other */
} MfgFdwColumnIn;

/* executor state */
typedef struct MfgFdwExecState
{
	MfgFdwTable *t;
	MemoryContext scan_cxt;		/* the scan and its buffers */
	MemoryContext row_cxt;		/* reset for each row */
	MfgFdwScan *scan;
	bool		started;
	bool		empty;			/* a pushed value is NULL: no rows */
	List	   *param_names;	/* String */
	List	   *param_ops;		/* Integer: MFG_OP_* */
	List	   *param_exprs;	/* ExprState */
	int64		limit;
	int			natts;
	MfgFdwColumnIn *in;			/* by attribute number - 1 */
	MfgFdwRowSink sink;			/* mapped columns and their values */
	int		   *col_att;		/* ... their attribute number - 1 */
	/* for the error context of a conversion */
	const char *err_column;
	const char *err_value;
	int64		err_row;
} MfgFdwExecState;

static const char *const op_names[] = {"<", "<=", ">", ">=", "=", "IN"};

/* the column's parameter for op, or NULL */
static const char *
param_for(MfgFdwColumn *col, int op)
{
	if (op == MFG_OP_EQ || op == MFG_OP_IN)
		return col->param;
	return col->param_op[op];
}

static int
op_from_name(const char *name)
{
	if (strcmp(name, "<") == 0)
		return MFG_OP_LT;
	if (strcmp(name, "<=") == 0)
		return MFG_OP_LE;
	if (strcmp(name, ">") == 0)
		return MFG_OP_GT;
	if (strcmp(name, ">=") == 0)
		return MFG_OP_GE;
	if (strcmp(name, "=") == 0)
		return MFG_OP_EQ;
	return -1;
}

/* a Var of baserel, possibly under a binary-compatible cast */
static Var *
rel_var(Node *node, RelOptInfo *baserel)
{
	if (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node && IsA(node, Var) &&
		((Var *) node)->varno == baserel->relid &&
		((Var *) node)->varlevelsup == 0 &&
		((Var *) node)->varattno > 0)
		return (Var *) node;
	return NULL;
}

/* may expr be computed before the scan (no Var of baserel, not volatile)? */
static bool
outside_value(Node *expr, RelOptInfo *baserel)
{
	Relids		relids = pull_varnos(NULL, expr);

	return !bms_is_member(baserel->relid, relids) &&
		!contain_volatile_functions(expr);
}

/*
 * pushable
 *		Can clause become a query parameter?  Fills *q when it can.
 */
static bool
pushable(Expr *clause, RelOptInfo *baserel, MfgFdwTable *t, PushedQual *q)
{
	if (IsA(clause, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) clause;
		Var		   *var;
		Node	   *other;
		Oid			opno = op->opno;
		char	   *name;
		int			code;

		if (list_length(op->args) != 2 || opno >= FirstGenbkiObjectId)
			return false;
		name = get_opname(opno);
		if (name == NULL || (code = op_from_name(name)) < 0)
			return false;
		if ((var = rel_var(linitial(op->args), baserel)) != NULL)
			other = lsecond(op->args);
		else if ((var = rel_var(lsecond(op->args), baserel)) != NULL)
		{
			other = linitial(op->args);
			/* b < col is col > b */
			if (code == MFG_OP_LT)
				code = MFG_OP_GT;
			else if (code == MFG_OP_LE)
				code = MFG_OP_GE;
			else if (code == MFG_OP_GT)
				code = MFG_OP_LT;
			else if (code == MFG_OP_GE)
				code = MFG_OP_LE;
		}
		else
			return false;
		if (!outside_value(other, baserel))
			return false;
		q->col = mfgsync_fdw_column(t, var->varattno);
		if (q->col == NULL || param_for(q->col, code) == NULL)
			return false;
		q->op = code;
		q->value = (Expr *) other;
		return true;
	}
	if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *op = (ScalarArrayOpExpr *) clause;
		Var		   *var;
		char	   *name;

		if (!op->useOr || list_length(op->args) != 2 ||
			op->opno >= FirstGenbkiObjectId)
			return false;
		name = get_opname(op->opno);
		if (name == NULL || strcmp(name, "=") != 0)
			return false;
		var = rel_var(linitial(op->args), baserel);
		if (var == NULL || !outside_value(lsecond(op->args), baserel))
			return false;
		q->col = mfgsync_fdw_column(t, var->varattno);
		if (q->col == NULL || q->col->param == NULL)
			return false;
		q->op = MFG_OP_IN;
		q->value = (Expr *) lsecond(op->args);
		return true;
	}
	return false;
}

static Oid
scan_user(RelOptInfo *baserel)
{
	return OidIsValid(baserel->userid) ? baserel->userid : GetUserId();
}

/*
 * GetForeignRelSize: resolve the options and estimate the rows
 */
static void
http_get_rel_size(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	MfgFdwPlanState *ps = palloc0(sizeof(MfgFdwPlanState));
	ListCell   *lc;

	ps->t = mfgsync_fdw_table_load(foreigntableid, scan_user(baserel));
	ps->all_pushed = true;
	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		PushedQual	q;

		if (!pushable(ri->clause, baserel, ps->t, &q))
			ps->all_pushed = false;
	}
	baserel->fdw_private = ps;
	baserel->rows = clamp_row_est(MFG_FDW_DEFAULT_ROWS *
								  clauselist_selectivity(root,
														 baserel->baserestrictinfo,
														 0, JOIN_INNER, NULL));
}

/* the number of requests a scan of rows rows probably makes */
static double
requests_for(MfgFdwTable *t, double rows)
{
	if (t->paging == MFG_PAGING_NONE || t->page_size == 0)
		return 1;
	return floor(rows / t->page_size) + 1;
}

/* callback of generate_implied_equalities_for_column */
static bool
ec_matches_column(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				  EquivalenceMember *em, void *arg)
{
	Var		   *var = rel_var((Node *) em->em_expr, rel);

	return var != NULL && var->varattno == *(int *) arg;
}

/* add a path parameterized by the outer relations of clause */
static void
add_param_path(PlannerInfo *root, RelOptInfo *baserel, RestrictInfo *ri,
			   List **seen)
{
	Relids		outer = bms_difference(ri->clause_relids, baserel->relids);
	ParamPathInfo *ppi;
	ForeignPath *path;
	ListCell   *lc;
	MfgFdwPlanState *ps = baserel->fdw_private;

	if (bms_is_empty(outer) || bms_overlap(outer, baserel->relids))
		return;
	foreach(lc, *seen)
	{
		if (bms_equal(outer, (Relids) lfirst(lc)))
			return;
	}
	*seen = lappend(*seen, outer);
	ppi = get_baserel_parampathinfo(root, baserel, outer);
	path = create_foreignscan_path(root, baserel, NULL,
								   Min(ppi->ppi_rows, MFG_FDW_PARAM_ROWS),
								   MFG_FDW_REQUEST_COST,
								   MFG_FDW_REQUEST_COST +
								   MFG_FDW_PARAM_ROWS * MFG_FDW_ROW_COST,
								   NIL, outer, NULL, NIL);
	(void) ps;
	add_path(baserel, (Path *) path);
}

/*
 * GetForeignPaths: one plain path, and parameterized ones for joins on
 * columns with a param option
 */
static void
http_get_paths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	MfgFdwPlanState *ps = baserel->fdw_private;
	MfgFdwTable *t = ps->t;
	double		requests = requests_for(t, MFG_FDW_DEFAULT_ROWS);
	List	   *seen = NIL;
	ListCell   *lc;
	int			i;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
									 MFG_FDW_REQUEST_COST,
									 MFG_FDW_REQUEST_COST * requests +
									 MFG_FDW_DEFAULT_ROWS * MFG_FDW_ROW_COST,
									 NIL, NULL, NULL, NIL));

	/* join clauses from equivalence classes: o.code = t.order_code */
	for (i = 0; i < t->ncolumns; i++)
	{
		List	   *clauses;
		int			attnum = t->columns[i].attnum;

		if (t->columns[i].param == NULL)
			continue;
		clauses = generate_implied_equalities_for_column(root, baserel,
														 ec_matches_column,
														 &attnum,
														 baserel->lateral_referencers);
		foreach(lc, clauses)
		{
			RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
			PushedQual	q;

			if (pushable(ri->clause, baserel, t, &q))
				add_param_path(root, baserel, ri, &seen);
		}
	}
	/* other join clauses: t.updated_at > o.since */
	foreach(lc, baserel->joininfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		PushedQual	q;

		if (pushable(ri->clause, baserel, t, &q))
			add_param_path(root, baserel, ri, &seen);
	}
}

/*
 * GetForeignPlan: pushed quals become fdw_exprs; all quals stay local
 */
static ForeignScan *
http_get_plan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
			  ForeignPath *best_path, List *tlist, List *scan_clauses,
			  Plan *outer_plan)
{
	MfgFdwPlanState *ps = baserel->fdw_private;
	List	   *names = NIL;
	List	   *ops = NIL;
	List	   *exprs = NIL;
	List	   *shown = NIL;
	bool		all_pushed = true;
	double		limit = -1;
	ListCell   *lc;

	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		PushedQual	q;

		if (pushable(ri->clause, baserel, ps->t, &q))
		{
			names = lappend(names, makeString(pstrdup(param_for(q.col, q.op))));
			ops = lappend_int(ops, q.op);
			exprs = lappend(exprs, q.value);
			shown = lappend(shown, makeString(q.col->name));
		}
		else
			all_pushed = false;
	}
	if (all_pushed && root->limit_tuples > 0 &&
		root->parse->sortClause == NIL &&
		bms_membership(root->all_baserels) == BMS_SINGLETON &&
		root->limit_tuples < PG_INT32_MAX)
		limit = root->limit_tuples;

	scan_clauses = extract_actual_clauses(scan_clauses, false);
	return make_foreignscan(tlist, scan_clauses, baserel->relid, exprs,
							list_make4(names, ops, shown,
									   makeInteger((int) limit)),
							NIL, NIL, outer_plan);
}

/* callback for errors while converting a value */
static void
conversion_error_callback(void *arg)
{
	MfgFdwExecState *st = (MfgFdwExecState *) arg;

	if (st->err_column)
	{
		if (st->err_value == NULL)
			errcontext("column \"%s\" of row " INT64_FORMAT " from server \"%s\"",
					   st->err_column, st->err_row, st->t->servername);
		else
			errcontext("column \"%s\" of row " INT64_FORMAT " from server \"%s\", value \"%.100s%s\"",
					   st->err_column, st->err_row, st->t->servername,
					   st->err_value,
					   strlen(st->err_value) > 100 ? "..." : "");
	}
}

/*
 * BeginForeignScan
 */
static void
http_begin_scan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	MfgFdwExecState *st = palloc0(sizeof(MfgFdwExecState));
	RangeTblEntry *rte = exec_rt_fetch(fsplan->scan.scanrelid, estate);
	Oid			userid = OidIsValid(rte->checkAsUser) ?
		rte->checkAsUser : GetUserId();
	TupleDesc	tupdesc = RelationGetDescr(node->ss.ss_currentRelation);
	int			i;

	node->fdw_state = st;
	st->t = mfgsync_fdw_table_load(RelationGetRelid(node->ss.ss_currentRelation),
								   userid);
	st->param_names = (List *) linitial(fsplan->fdw_private);
	st->param_ops = (List *) lsecond(fsplan->fdw_private);
	st->limit = intVal(lfourth(fsplan->fdw_private));
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	st->param_exprs = ExecInitExprList(fsplan->fdw_exprs, (PlanState *) node);
	st->scan_cxt = AllocSetContextCreate(estate->es_query_cxt,
										 "mfgsync http_fdw scan",
										 ALLOCSET_DEFAULT_SIZES);
	st->row_cxt = AllocSetContextCreate(estate->es_query_cxt,
										"mfgsync http_fdw row",
										ALLOCSET_DEFAULT_SIZES);
	st->scan = mfgsync_fdw_scan_create(st->t, st->scan_cxt);

	st->natts = tupdesc->natts;
	st->in = palloc0(sizeof(MfgFdwColumnIn) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, i);
		Oid			func;
		Oid			base = getBaseType(attr->atttypid);

		if (attr->attisdropped)
			continue;
		st->in[i].col = mfgsync_fdw_column(st->t, i + 1);
		getTypeInputInfo(attr->atttypid, &func, &st->in[i].ioparam);
		fmgr_info(func, &st->in[i].input);
		st->in[i].typmod = attr->atttypmod;
		st->in[i].is_json = base == JSONOID || base == JSONBOID;
		/* the same values as their input functions give, made directly */
		if (attr->atttypid == TEXTOID)
			st->in[i].fast = 't';
		else if (attr->atttypid == TIMESTAMPTZOID && attr->atttypmod < 0)
			st->in[i].fast = 'z';
	}
	st->sink.cols = palloc(sizeof(MfgFdwColumn *) * tupdesc->natts);
	st->sink.spans = palloc(sizeof(MfgJsonSpan) * tupdesc->natts);
	st->col_att = palloc(sizeof(int) * tupdesc->natts);
	for (i = 0; i < tupdesc->natts; i++)
		if (st->in[i].col != NULL)
		{
			st->sink.cols[st->sink.ncols] = st->in[i].col;
			st->col_att[st->sink.ncols++] = i;
		}
}

/* a pushed value as the API gets it: ISO 8601 for date-times */
static char *
format_value(Datum value, Oid type)
{
	Oid			out;
	bool		varlena;

	switch (type)
	{
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			{
				int			utc = 0;

				return JsonEncodeDateTime(NULL, value, type,
										  type == TIMESTAMPTZOID ? &utc : NULL);
			}
		case BOOLOID:
			return pstrdup(DatumGetBool(value) ? "true" : "false");
		default:
			getTypeOutputInfo(type, &out, &varlena);
			return OidOutputFunctionCall(out, value);
	}
}

/* a parameter's text; an IN list comma-separated; NULL if it is empty */
static char *
param_value(Datum v, Oid type, int op)
{
	ArrayType  *arr;
	Oid			elemtype;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	StringInfoData buf;

	if (op != MFG_OP_IN)
		return format_value(v, type);
	arr = DatumGetArrayTypeP(v);
	elemtype = ARR_ELEMTYPE(arr);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);
	initStringInfo(&buf);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			continue;
		appendStringInfo(&buf, "%s%s", buf.len ? "," : "",
						 format_value(elems[i], elemtype));
	}
	return buf.len > 0 ? buf.data : NULL;
}

/* compute the pushed parameters; false when one is NULL (no row matches) */
static bool
eval_params(ForeignScanState *node, MfgFdwExecState *st, List **params)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ListCell   *ln,
			   *lo,
			   *le;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	ListCell   *lx = list_head(fsplan->fdw_exprs);

	*params = NIL;
	forthree(ln, st->param_names, lo, st->param_ops, le, st->param_exprs)
	{
		ExprState  *es = (ExprState *) lfirst(le);
		Oid			type = exprType((Node *) lfirst(lx));
		bool		isnull;
		Datum		v = ExecEvalExpr(es, econtext, &isnull);
		MfgFdwParam *p = palloc(sizeof(MfgFdwParam));

		lx = lnext(fsplan->fdw_exprs, lx);
		if (isnull)
			return false;
		p->name = strVal(lfirst(ln));
		p->value = param_value(v, type, lfirst_int(lo));
		if (p->value == NULL)
			return false;
		*params = lappend(*params, p);
	}
	return true;
}

/*
 * IterateForeignScan
 */
static TupleTableSlot *
http_iterate(ForeignScanState *node)
{
	MfgFdwExecState *st = (MfgFdwExecState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	int64		rowno;
	ErrorContextCallback errcb;
	MemoryContext old;
	int			i;

	ExecClearTuple(slot);
	if (!st->started)
	{
		List	   *params;

		st->started = true;
		old = MemoryContextSwitchTo(st->row_cxt);
		st->empty = !eval_params(node, st, &params);
		if (!st->empty)
			mfgsync_fdw_scan_start(st->scan, params, st->limit);
		MemoryContextSwitchTo(old);
		MemoryContextReset(st->row_cxt);
	}
	if (st->empty)
		return slot;

	MemoryContextReset(st->row_cxt);
	old = MemoryContextSwitchTo(st->row_cxt);
	if (!mfgsync_fdw_scan_next_row(st->scan, &st->sink, &rowno))
	{
		MemoryContextSwitchTo(old);
		return slot;
	}
	memset(slot->tts_isnull, true, sizeof(bool) * st->natts);
	errcb.callback = conversion_error_callback;
	errcb.arg = st;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	st->err_row = rowno;
	for (i = 0; i < st->sink.ncols; i++)
	{
		int			att = st->col_att[i];
		MfgFdwColumnIn *in = &st->in[att];
		char	   *text;
		int			textlen;
		TimestampTz ts;

		st->err_column = in->col->name;
		st->err_value = NULL;
		text = mfgsync_fdw_json_text(&st->sink.spans[i], in->is_json, &textlen);
		st->err_value = text;
		slot->tts_isnull[att] = text == NULL;
		if (text != NULL && in->fast == 't')
			slot->tts_values[att] =
				PointerGetDatum(cstring_to_text_with_len(text, textlen));
		else if (text != NULL && in->fast == 'z' &&
				 mfgsync_fdw_iso_timestamptz(text, textlen, &ts))
			slot->tts_values[att] = TimestampTzGetDatum(ts);
		else
			slot->tts_values[att] = InputFunctionCall(&in->input, text,
													  in->ioparam, in->typmod);
	}
	st->err_column = NULL;
	error_context_stack = errcb.previous;
	MemoryContextSwitchTo(old);
	return ExecStoreVirtualTuple(slot);
}

/*
 * ReScanForeignScan: start again from the first page (the pushed values
 * may have changed)
 */
static void
http_rescan(ForeignScanState *node)
{
	MfgFdwExecState *st = (MfgFdwExecState *) node->fdw_state;

	st->started = false;
}

/*
 * EndForeignScan: a running request is stopped with the scan's context
 */
static void
http_end_scan(ForeignScanState *node)
{
	MfgFdwExecState *st = (MfgFdwExecState *) node->fdw_state;

	if (st && st->scan_cxt)
	{
		MemoryContextDelete(st->scan_cxt);
		st->scan_cxt = NULL;
		st->scan = NULL;
	}
}

/*
 * ExplainForeignScan: the remote request and what was pushed down; pages,
 * requests and bytes with ANALYZE
 */
static void
http_explain(ForeignScanState *node, ExplainState *es)
{
	MfgFdwExecState *st = (MfgFdwExecState *) node->fdw_state;
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	List	   *shown = (List *) lthird(fsplan->fdw_private);

	if (es->verbose)
	{
		List	   *context = set_deparse_context_plan(es->deparse_cxt,
													   node->ss.ps.plan, NIL);
		List	   *params = NIL;
		StringInfoData pushed;
		ListCell   *ln,
				   *lo,
				   *le,
				   *ls;

		initStringInfo(&pushed);
		forfour(ln, st->param_names, lo, st->param_ops, le, fsplan->fdw_exprs,
				ls, shown)
		{
			MfgFdwParam *p = palloc(sizeof(MfgFdwParam));
			Node	   *expr = (Node *) lfirst(le);

			p->name = strVal(lfirst(ln));
			p->value = NULL;
			if (IsA(expr, Const) && !((Const *) expr)->constisnull)
				p->value = param_value(((Const *) expr)->constvalue,
									   ((Const *) expr)->consttype,
									   lfirst_int(lo));
			if (p->value == NULL)
				p->value = "?";
			params = lappend(params, p);
			appendStringInfo(&pushed, "%s%s %s %s", pushed.len ? ", " : "",
							 quote_identifier(strVal(lfirst(ls))),
							 op_names[lfirst_int(lo)],
							 deparse_expression(expr, context, true, false));
		}
		ExplainPropertyText("Remote Request",
							psprintf("GET %s", mfgsync_fdw_first_url(st->t, params,
																	 st->limit)), es);
		if (pushed.len > 0)
			ExplainPropertyText("Pushed Down", pushed.data, es);
		if (st->limit > 0)
			ExplainPropertyInteger("Pushed Limit", NULL, st->limit, es);
	}
	if (es->analyze && st->scan)
	{
		MfgFdwStats stats;

		mfgsync_fdw_scan_stats(st->scan, &stats);
		ExplainPropertyInteger("Pages Fetched", NULL, stats.pages, es);
		ExplainPropertyInteger("Requests", NULL, stats.requests, es);
		ExplainPropertyInteger("Bytes Received", "bytes", stats.bytes, es);
	}
}

/* the SQL type inferred for values seen so far */
typedef enum InferredType
{
	INF_UNKNOWN,				/* only nulls so far */
	INF_BOOLEAN,
	INF_NUMERIC,
	INF_TIMESTAMPTZ,
	INF_JSONB,
	INF_TEXT
} InferredType;

static const char *const inferred_names[] =
{"text", "boolean", "numeric", "timestamptz", "jsonb", "text"};

/* does s look like an ISO 8601 date-time (2024-05-01T08:00:00Z)? */
static bool
looks_like_timestamp(const char *s)
{
	int			i;

	if (strlen(s) < 16)
		return false;
	for (i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char) s[i]))
			return false;
	return (s[10] == 'T' || s[10] == ' ') && isdigit((unsigned char) s[11]) &&
		isdigit((unsigned char) s[12]) && s[13] == ':';
}

static InferredType
infer(struct json_object *v)
{
	switch (json_object_get_type(v))
	{
		case json_type_null:
			return INF_UNKNOWN;
		case json_type_boolean:
			return INF_BOOLEAN;
		case json_type_int:
		case json_type_double:
			return INF_NUMERIC;
		case json_type_string:
			return looks_like_timestamp(json_object_get_string(v)) ?
				INF_TIMESTAMPTZ : INF_TEXT;
		default:
			return INF_JSONB;
	}
}

/* the CREATE FOREIGN TABLE statement for one resource, from a sample */
static char *
import_resource(ImportForeignSchemaStmt *stmt, Oid serverid, const char *name,
				const char *spec_text)
{
	struct json_object *spec = json_tokener_parse(spec_text);
	List	   *topts = NIL;
	MfgFdwTable *t;
	MfgFdwScan *scan;
	MemoryContext cxt;
	struct json_object *row;
	int64		rowno;
	List	   *keys = NIL;
	InferredType *types = palloc0(sizeof(InferredType) * 1024);
	StringInfoData sql;
	ListCell   *lc;
	int			i;

	if (json_object_is_type(spec, json_type_string))
		topts = list_make1(makeDefElem("path",
									   (Node *) makeString(pstrdup(json_object_get_string(spec))), -1));
	else if (json_object_is_type(spec, json_type_object))
	{
		json_object_object_foreach(spec, key, val)
			topts = lappend(topts, makeDefElem(pstrdup(key),
											   (Node *) makeString(pstrdup(json_object_get_string(val))), -1));
	}
	if (topts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("resource \"%s\" of the server's resources option is neither a path nor an object",
						name)));

	/* check the options as CREATE FOREIGN TABLE would */
	DirectFunctionCall2(mfgsync_http_fdw_validator,
						PointerGetDatum(transformGenericOptions(ForeignTableRelationId,
																(Datum) 0, topts, InvalidOid)),
						ObjectIdGetDatum(ForeignTableRelationId));

	t = mfgsync_fdw_server_load(serverid, GetUserId(), topts);
	cxt = AllocSetContextCreate(CurrentMemoryContext, "mfgsync http_fdw import",
								ALLOCSET_DEFAULT_SIZES);
	/* on error, the context goes with the transaction's, and the scan too */
	{
		MfgFdwStats stats;

		scan = mfgsync_fdw_scan_create(t, cxt);
		mfgsync_fdw_scan_start(scan, NIL, t->page_size > 0 ? t->page_size : 1000);
		for (;;)
		{
			mfgsync_fdw_scan_stats(scan, &stats);
			if (stats.pages > 0)
				break;
			row = mfgsync_fdw_scan_next(scan, &rowno);
			if (row == NULL)
				break;
			if (!json_object_is_type(row, json_type_object))
				continue;
			{
				json_object_object_foreach(row, key, val)
				{
					int			k = 0;
					InferredType it = infer(val);

					foreach(lc, keys)
					{
						if (strcmp(strVal(lfirst(lc)), key) == 0)
							break;
						k++;
					}
					if (lc == NULL)
					{
						if (list_length(keys) >= 1024)
							continue;
						keys = lappend(keys, makeString(pstrdup(key)));
					}
					if (it == INF_UNKNOWN)
						continue;
					if (types[k] == INF_UNKNOWN)
						types[k] = it;
					else if (types[k] != it)
						types[k] = INF_TEXT;
				}
			}
		}
	}
	MemoryContextDelete(cxt);

	if (keys == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_NO_SCHEMAS),
				 errmsg("the first page of resource \"%s\" has no rows to infer columns from",
						name)));

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE FOREIGN TABLE %s.%s (",
					 quote_identifier(stmt->local_schema), quote_identifier(name));
	i = 0;
	foreach(lc, keys)
	{
		appendStringInfo(&sql, "%s%s %s", i ? ", " : "",
						 quote_identifier(strVal(lfirst(lc))),
						 inferred_names[types[i]]);
		i++;
	}
	appendStringInfo(&sql, ") SERVER %s OPTIONS (",
					 quote_identifier(t->servername));
	i = 0;
	foreach(lc, topts)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		appendStringInfo(&sql, "%s%s %s", i++ ? ", " : "",
						 quote_identifier(def->defname),
						 quote_literal_cstr(defGetString(def)));
	}
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * ImportForeignSchema: one table per entry of the server's resources
 * option (LIMIT TO / EXCEPT apply), columns inferred from the first page
 */
static List *
http_import(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	char	   *resources = NULL;
	struct json_object *doc;
	List	   *result = NIL;
	List	   *names = NIL;
	List	   *specs = NIL;
	ListCell   *lc,
			   *ls;

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "resources") == 0)
			resources = defGetString(def);
	}
	if (resources == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" declares no resources", server->servername),
				 errhint("Set the server's \"resources\" option, such as '{\"orders\": \"/orders\"}'.")));
	if (strcmp(stmt->remote_schema, "resources") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("remote schema \"%s\" does not exist", stmt->remote_schema),
				 errhint("The resources of an mfgsync_http server are imported from the remote schema \"resources\".")));

	/* copy the resources out of json-c's memory before doing anything */
	doc = json_tokener_parse(resources);
	if (doc == NULL || !json_object_is_type(doc, json_type_object))
		elog(ERROR, "resources option is not a JSON object");
	{
		json_object_object_foreach(doc, name, spec)
		{
			names = lappend(names, makeString(pstrdup(name)));
			specs = lappend(specs, makeString(pstrdup(json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN))));
		}
	}
	json_object_put(doc);

	forboth(lc, names, ls, specs)
	{
		char	   *name = strVal(lfirst(lc));
		bool		listed = false;
		bool		wanted;
		ListCell   *lt;

		foreach(lt, stmt->table_list)
			if (strcmp(((RangeVar *) lfirst(lt))->relname, name) == 0)
			listed = true;
		wanted = stmt->list_type == FDW_IMPORT_SCHEMA_ALL ||
			(stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO && listed) ||
			(stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT && !listed);
		if (!wanted)
			continue;
		result = lappend(result, import_resource(stmt, serverOid, name,
												 strVal(lfirst(ls))));
	}
	return result;
}

PG_FUNCTION_INFO_V1(mfgsync_http_fdw_handler);

/*
 * mfgsync_http_fdw_handler
 *		The FdwRoutine of the mfgsync_http wrapper.
 */
Datum
mfgsync_http_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = http_get_rel_size;
	routine->GetForeignPaths = http_get_paths;
	routine->GetForeignPlan = http_get_plan;
	routine->BeginForeignScan = http_begin_scan;
	routine->IterateForeignScan = http_iterate;
	routine->ReScanForeignScan = http_rescan;
	routine->EndForeignScan = http_end_scan;
	routine->ExplainForeignScan = http_explain;
	routine->ImportForeignSchema = http_import;
	PG_RETURN_POINTER(routine);
}
