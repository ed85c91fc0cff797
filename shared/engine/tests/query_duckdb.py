"""The DuckDB side of tests/query_duckdb.rs: for every case (a CSV file, a query document and
the Tessera engine's result), build the equivalent SQL, run it with DuckDB (one thread), turn
DuckDB's answer into Tessera's result shape and compare: exactly for exact aggregates, within
the documented error for the approximate ones. Exits 1 listing every difference.

Semantics mapped onto SQL (docs/query.md, "Differences from SQL"): the null spellings are
nulls; a value that does not parse as its column type is null (TRY_CAST) and counted as
unparsed; a comparison with a null is false (two-valued logic: NOT applies to false, not to
NULL); nulls sort last in both directions and ties fall back to the keys ascending.

Fails loudly (ImportError) when duckdb is missing: the test never skips.
"""

import json
import math
import sys
from collections import Counter
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb  # noqa: E402  (pinned in .ci/run: duckdb==1.5.6)

SQL_TYPE = {
    "integer": "BIGINT",
    "decimal": "DECIMAL(38,10)",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "string": "VARCHAR",
}


def q(s):
    return "'" + s.replace("'", "''") + "'"


def ident(s):
    return '"' + s.replace('"', '""') + '"'


class Sql:
    def __init__(self, types):
        self.types = types

    def lit(self, col, v):
        t = self.types[col]
        if t in ("integer", "decimal"):
            return str(v) if not isinstance(v, float) else str(Decimal(str(v)))
        if t == "boolean":
            return "TRUE" if v else "FALSE"
        if t == "date":
            return "DATE " + q(v)
        if t == "timestamp":
            return "TIMESTAMP " + q(v)
        return q(v)

    def pred(self, p):
        if "and" in p:
            return "(" + " AND ".join([self.pred(x) for x in p["and"]] or ["TRUE"]) + ")"
        if "or" in p:
            return "(" + " OR ".join([self.pred(x) for x in p["or"]] or ["FALSE"]) + ")"
        if "not" in p:
            return "(NOT " + self.pred(p["not"]) + ")"
        c, op, v = ident(p["column"]), p["op"], p.get("value")
        col = p["column"]
        if op == "is_null":
            return f"({c} IS NULL)"
        ops = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if op in ops:
            e = f"{c} {ops[op]} {self.lit(col, v)}"
        elif op == "in":
            e = f"{c} IN ({', '.join(self.lit(col, x) for x in v)})"
        elif op == "between":
            e = f"{c} BETWEEN {self.lit(col, v[0])} AND {self.lit(col, v[1])}"
        elif op == "contains":
            e = f"contains({c}, {q(v)})"
        elif op == "starts_with":
            e = f"starts_with({c}, {q(v)})"
        elif op == "matches":
            e = f"regexp_matches({c}, {q(v)})"
        else:
            raise ValueError(op)
        return f"coalesce({e}, FALSE)"

    def key(self, k):
        if isinstance(k, str):
            return ident(k)
        c = ident(k["column"])
        if "bucket" in k:
            e = f"date_trunc('{k['bucket']}', {c})"
            return f"CAST({e} AS DATE)" if self.types[k["column"]] == "date" else e
        if "width" in k:
            return f"(floor({c} / {k['width']}) * {k['width']})"
        if "edges" in k:
            arms = " ".join(f"WHEN {c} >= {e} THEN {e}" for e in reversed(k["edges"]))
            return f"(CASE {arms} END)"
        return f"{k['transform']}({c})"

    def agg(self, a):
        """SQL expressions whose values `finish_agg` turns into Tessera's cell."""
        f, c = a["fn"], ident(a["column"]) if "column" in a else None
        if f == "count":
            return [f"count({c})" if c else "count(*)"]
        if f == "count_if":
            return [f"count(*) FILTER (WHERE {self.pred(a['filter'])})"]
        if f == "avg":
            return [f"sum({c})", f"count({c})"]
        if f == "stddev":
            return [f"stddev_samp({c})"]
        if f == "count_distinct":
            return [f"count(DISTINCT {c})"]
        if f in ("quantile", "top"):
            return [f"list({c} ORDER BY {c}) FILTER (WHERE {c} IS NOT NULL)"]
        if f == "corr":
            return [f"corr({c}, {ident(a['other'])})"]
        if f == "null_count":
            return [f"count(*) - count({c})"]
        return [f"{f}({c})"]


def norm(v):
    """A DuckDB value in Tessera's JSON form."""
    import datetime

    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, datetime.datetime):
        s = v.strftime("%Y-%m-%dT%H:%M:%S")
        if v.microsecond:
            s += ("." + f"{v.microsecond:06d}").rstrip("0")
        return s + "Z"
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return dec_text(v)
    if isinstance(v, float):
        return dec_text(Decimal(repr(v)))
    if isinstance(v, int):
        return v
    return v


def dec_text(d):
    d = d.normalize()
    if d == 0:
        return "0"
    s = format(d, "f")
    return s


def finish_agg(a, vals, key_types):
    f = a["fn"]
    if f in ("count", "count_if", "null_count", "count_distinct"):
        return int(vals[0])
    if f == "sum":
        return None if vals[0] is None else dec_text(Decimal(str(vals[0])))
    if f == "avg":
        s, n = vals
        if not n:
            return None
        return dec_text((Decimal(str(s)) / n).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN))
    if f in ("min", "max"):
        v = norm(vals[0])
        return dec_text(Decimal(v)) if key_types.get(a["column"]) == "decimal" and v is not None else v
    if f in ("stddev", "corr"):
        v = vals[0]
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    if f == "quantile":
        return ("list", vals[0] or [])
    if f == "top":
        return ("top", vals[0] or [])
    raise ValueError(f)


def value_order(v):
    return (0, Decimal(v)) if isinstance(v, str) and is_number(v) else (1, v)


def is_number(s):
    try:
        Decimal(s)
        return True
    except Exception:
        return False


def agree(a, ours, theirs, types):
    """None when `ours` matches DuckDB's value `theirs`, else a description."""
    f = a["fn"]
    if f == "quantile":
        xs = [Decimal(str(x)) for x in theirs[1]]
        if not xs:
            return None if ours is None else f"quantile of nothing is {ours}"
        r = a["q"] * (len(xs) - 1)
        lo, hi = xs[math.floor(r)], xs[math.ceil(r)]
        x = Decimal(repr(ours))
        tol = Decimal("0.01") * max(abs(lo), abs(hi)) + Decimal("1e-9")
        return None if lo - tol <= x <= hi + tol else f"quantile {ours} outside [{lo}, {hi}] +- 1%"
    if f == "top":
        t = types[a["column"]]
        counts = Counter(norm(x) if t != "decimal" else dec_text(Decimal(str(x))) for x in theirs[1])
        want = sorted(counts.items(), key=lambda kv: (-kv[1], value_order(kv[0])))[: a.get("k", 10)]
        want = [{"value": v, "count": n} for v, n in want]
        return None if ours == want else f"top {ours} != {want}"
    if f == "count_distinct" and a.get("approx"):
        return None if abs(ours - theirs) <= 0.03 * theirs else f"approx {ours} vs exact {theirs} (> 3%)"
    if f in ("stddev", "corr"):
        if ours is None or theirs is None:
            return None if ours == theirs else f"{ours} != {theirs}"
        return None if abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)) else f"{ours} != {theirs}"
    return None if ours == theirs else f"{ours!r} != {theirs!r}"


def run_case(con, case, nulls):
    doc, res, path = case["query"], case["result"], case["file"]
    types = res["types"]
    header = case["columns"]
    cols = ", ".join(f"{q(c)}: 'VARCHAR'" for c in header)
    null_list = ", ".join(q(n) for n in nulls)
    raw = (
        f"read_csv({q(path)}, header=true, auto_detect=false, delim=',', quote='\"', "
        f"escape='\"', columns={{{cols}}})"
    )
    typed = ", ".join(
        f"CASE WHEN {ident(c)} IS NULL OR {ident(c)} IN ({null_list}) THEN NULL "
        f"ELSE TRY_CAST({ident(c)} AS {SQL_TYPE[types.get(c, 'string')]}) END AS {ident(c)}"
        for c in header
    )
    unparsed = ", ".join(
        f"count(*) FILTER (WHERE {ident(c)} IS NOT NULL AND {ident(c)} NOT IN ({null_list}) "
        f"AND TRY_CAST({ident(c)} AS {SQL_TYPE[t]}) IS NULL)"
        for c, t in sorted(types.items())
    )
    problems = []
    got_unparsed = con.sql(f"SELECT count(*), {unparsed} FROM {raw}").fetchone()
    want_unparsed = dict(zip(sorted(types), got_unparsed[1:]))
    if want_unparsed != res["unparsed"]:
        problems.append(f"unparsed {res['unparsed']} != duckdb {want_unparsed}")
    if got_unparsed[0] != res["rows_scanned"]:
        problems.append(f"rows {res['rows_scanned']} != duckdb {got_unparsed[0]}")
    s = Sql(types)
    keys = [s.key(k) for k in doc.get("group_by", [])]
    aggs = doc.get("aggregates", [])
    exprs = [s.agg(a) for a in aggs]
    sel = [f"{k} AS k{i}" for i, k in enumerate(keys)]
    for i, es in enumerate(exprs):
        sel += [f"{e} AS a{i}_{j}" for j, e in enumerate(es)]
    where = f" WHERE {s.pred(doc['filter'])}" if "filter" in doc else ""
    group = f" GROUP BY {', '.join(f'k{i}' for i in range(len(keys)))}" if keys else ""
    sql = f"SELECT {', '.join(sel)} FROM (SELECT {typed} FROM {raw}){where}{group}"
    rows = con.sql(sql).fetchall()
    key_types = dict(types)
    out = []
    for r in rows:
        r = list(r)
        ks = [norm(v) for v in r[: len(keys)]]
        for i, k in enumerate(doc.get("group_by", [])):
            col = k if isinstance(k, str) else k["column"]
            if ks[i] is not None and (types[col] == "decimal" or (isinstance(k, dict) and ("width" in k or "edges" in k))):
                d = Decimal(str(ks[i]))
                ks[i] = int(d) if types[col] == "integer" and d == d.to_integral() else dec_text(d)
        pos, cells = len(keys), []
        for a, es in zip(aggs, exprs):
            cells.append(finish_agg(a, r[pos : pos + len(es)], key_types))
            pos += len(es)
        out.append(ks + cells)
    out = apply_final(doc, out, len(keys), aggs, res["columns"], types)
    if len(out) != len(res["rows"]):
        problems.append(f"{len(res['rows'])} rows, duckdb {len(out)}: {res['rows'][:5]} vs {out[:5]}")
    for n, (mine, theirs) in enumerate(zip(res["rows"], out)):
        for i, (x, y) in enumerate(zip(mine, theirs)):
            if i < len(keys):
                if x != y:
                    problems.append(f"row {n} key {i}: {x!r} != {y!r}")
            else:
                d = agree(aggs[i - len(keys)], x, y, types)
                if d:
                    problems.append(f"row {n} {res['columns'][i]}: {d}")
    return problems, sql


def sort_value(v, numeric):
    if v is None:
        return (1,)
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (0, Decimal(repr(v)))
    if numeric:
        return (0, Decimal(v))
    return (0, v.encode())


def numeric_columns(doc, types):
    out = []
    for k in doc.get("group_by", []):
        col = k if isinstance(k, str) else k["column"]
        derived = isinstance(k, dict) and ("width" in k or "edges" in k)
        out.append(derived or (types[col] in ("integer", "decimal") and isinstance(k, str)))
    for a in doc.get("aggregates", []):
        num = a["fn"] not in ("min", "max", "top") or types[a["column"]] in ("integer", "decimal")
        out.append(num)
    return out


def apply_final(doc, rows, nkeys, aggs, columns, types):
    numeric = numeric_columns(doc, types)
    def cell(r, i):
        v = r[i]
        return v if not isinstance(v, tuple) else None

    def holds(h, r):
        if "and" in h:
            return all(holds(x, r) for x in h["and"])
        if "or" in h:
            return any(holds(x, r) for x in h["or"])
        if "not" in h:
            return not holds(h["not"], r)
        i = columns.index(h["key"]) if "key" in h else nkeys + h["aggregate"]
        v = cell(r, i)
        if h["op"] == "is_null":
            return v is None
        if v is None:
            return False
        a, b = sort_value(v, numeric[i])[1], sort_value(h["value"], numeric[i])[1]
        return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[h["op"]]

    if "having" in doc:
        rows = [r for r in rows if holds(doc["having"], r)]
    # Stable sorts from the last term to the first: the keys ascending, then the terms.
    for i in reversed(range(nkeys)):
        rows.sort(key=lambda r: sort_value(r[i], numeric[i]))
    for o in reversed(doc.get("order_by", [])):
        i = columns.index(o["key"]) if "key" in o else nkeys + o["aggregate"]
        nonnull = [r for r in rows if cell(r, i) is not None]
        nulls = [r for r in rows if cell(r, i) is None]
        nonnull.sort(key=lambda r: sort_value(r[i], numeric[i]), reverse=o.get("desc", False))
        rows = nonnull + nulls
    off = doc.get("offset", 0)
    return rows[off : off + doc.get("limit", 1000)]


def main():
    spec = json.load(open(sys.argv[1]))
    con = duckdb.connect(config={"threads": 1})
    failures = 0
    for n, case in enumerate(spec["cases"]):
        try:
            problems, sql = run_case(con, case, spec["null_tokens"])
        except duckdb.Error as e:
            problems, sql = [f"DuckDB error: {e}"], "?"
        if problems:
            failures += 1
            print(f"case {n} ({case['file']}): {json.dumps(case['query'])}\n  SQL: {sql}")
            for p in problems[:10]:
                print("  -", p)
    print(f"{len(spec['cases']) - failures} passed, {failures} failed (duckdb {duckdb.__version__})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
