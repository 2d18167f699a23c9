#!/usr/bin/env python3
"""Evaluates every PromQL expression of the dashboard and the rules against a
running Prometheus (its HTTP API) and checks that each returns data.

    check_queries.py --prometheus http://127.0.0.1:PORT \
        --dashboard observability/grafana/memshelf-dashboard.json \
        --rules observability/prometheus/memshelf-recording.yml \
        --rules observability/prometheus/memshelf-alerts.yml \
        --alert-tests observability/prometheus/tests/alerts-test.yml

Also checks the dashboard's shape (the executive, on-call and debug rows,
unique panel ids, a data source on every target) and that every alert has a
firing case in the promtool unit tests.

An expression that returns no data fails the check, unless it reads a metric
that SPEC 7 names but the exporter does not serve yet (the engine's latency
histograms and hot-key share, the agent's degraded gauge): those are listed
as PENDING, and become strict as soon as the exporter serves them. A metric
name that is neither in SPEC 7 nor served fails at once (a typo).
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

# SPEC 7 (base names; histograms also have _bucket, _sum, _count).
SPEC7 = {
    "memshelf_hits_total",
    "memshelf_misses_total",
    "memshelf_evictions_total",
    "memshelf_expirations_total",
    "memshelf_entries",
    "memshelf_used_bytes",
    "memshelf_capacity_bytes",
    "memshelf_agent_messages_total",
    "memshelf_agent_connected",
    "memshelf_agent_reconnects_total",
    "memshelf_agent_gaps_total",
    "memshelf_agent_flushes_total",
    "memshelf_agent_lag_seconds",
    "memshelf_agent_last_message_age_seconds",
    "memshelf_agent_degraded",
    "memshelf_op_duration_seconds",
    "memshelf_hot_key_share",
}
HISTOGRAMS = {"memshelf_agent_lag_seconds", "memshelf_op_duration_seconds"}
BUILTIN = {"up"}
# Dashboard variables, as Grafana would expand "All" and the rate interval.
VARIABLES = {"$__rate_interval": "30s", "$instance": ".*", "$cache": ".*", "$job": ".*"}
NAME_RE = re.compile(r"(?<![\w:\"])((?:memshelf[_:][A-Za-z0-9_:]+)|up)(?=\s*[{\[)\s]|$)")


class Prom:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        """(result list, error or None)."""
        try:
            return self.get("/api/v1/query", query=expr)["result"], None
        except urllib.error.HTTPError as e:
            return [], f"HTTP {e.code}: {e.read().decode(errors='replace')}"
        except RuntimeError as e:
            return [], str(e)


def expand(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    return expr


def names_in(expr):
    out = set()
    for n in NAME_RE.findall(expr):
        if n.startswith("memshelf:"):
            out.add(n)
            continue
        for suffix in ("_bucket", "_sum", "_count"):
            if n.endswith(suffix) and n[: -len(suffix)] in HISTOGRAMS:
                n = n[: -len(suffix)]
        out.add(n)
    return out


def split_top(expr):
    """Operands of the top-level comparisons and set operators of `expr`."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    ops = ("==", "!=", ">=", "<=", ">", "<")
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            op = next((o for o in ops if expr.startswith(o, i)), None)
            word = re.match(r"(and|or|unless)\b", expr[i:])
            if word and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_:")):
                op = word.group(1)
            if op:
                parts.append(expr[start:i])
                i += len(op)
                start = i
                continue
        i += 1
    parts.append(expr[start:])
    mod = re.compile(
        r"^\s*(bool\s+)?((on|ignoring)\s*\([^)]*\)\s*)?((group_left|group_right)\s*(\([^)]*\))?\s*)?"
    )
    out = []
    for p in parts:
        p = mod.sub("", p).strip()
        if p and not re.fullmatch(r"[-+]?[0-9.eE+-]+", p):
            out.append(p)
    return out if len(out) > 1 or len(parts) > 1 else []


def dashboard_exprs(path, errors):
    d = json.load(open(path))
    exprs, ids = [], set()
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for want in ("Executive", "On-call", "Debug"):
        if not any(r.startswith(want) for r in rows):
            errors.append(f"dashboard: no {want} row (rows: {rows})")
    for p in d["panels"]:
        if p["id"] in ids:
            errors.append(f"dashboard: duplicate panel id {p['id']}")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            errors.append(f"dashboard: panel {p['title']!r} is wider than the grid")
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            errors.append(f"dashboard: panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"dashboard: panel {p['title']!r} target without the datasource variable")
            exprs.append((f"dashboard panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
        if not m:
            errors.append(f"dashboard: variable {v['name']} is not label_values(SELECTOR, LABEL)")
            continue
        exprs.append((f"dashboard variable ${v['name']}", m.group(1)))
    return exprs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--rules", action="append", required=True)
    ap.add_argument("--alert-tests", required=True)
    ap.add_argument("--wait", type=float, default=60, help="seconds to wait for the rules' first results")
    a = ap.parse_args()
    prom = Prom(a.prometheus)
    errors, pending, with_data = [], {}, 0

    exprs = dashboard_exprs(a.dashboard, errors)
    recorded, alerts = {}, []
    for f in a.rules:
        for g in yaml.safe_load(open(f))["groups"]:
            for r in g["rules"]:
                if "record" in r:
                    recorded[r["record"]] = r["expr"]
                    exprs.append((f"recording rule {r['record']}", r["expr"]))
                    exprs.append((f"recorded series {r['record']}", r["record"]))
                else:
                    alerts.append(r)

    # Every alert has a firing case in the unit tests.
    tested = set()
    for t in yaml.safe_load(open(a.alert_tests))["tests"]:
        for c in t.get("alert_rule_test", []):
            if c.get("exp_alerts"):
                tested.add(c["alertname"])
    for r in alerts:
        if r["alert"] not in tested:
            errors.append(f"alert {r['alert']} has no firing case in {a.alert_tests}")
        # The whole expression must be valid; its operands must return data.
        _, err = prom.query(r["expr"])
        if err:
            errors.append(f"alert {r['alert']}: {err}")
        ops = split_top(r["expr"])
        if not ops:
            errors.append(f"alert {r['alert']}: no comparison to split: {r['expr']!r}")
        for i, op in enumerate(ops):
            exprs.append((f"alert {r['alert']} operand {i + 1}", op))

    # Wait until the rules have been evaluated at least once.
    deadline = time.time() + a.wait
    first = next(iter(recorded))
    while not prom.query(first)[0] and time.time() < deadline:
        time.sleep(1)

    served = set(prom.get("/api/v1/label/__name__/values"))
    served_base = {n for n in served} | {
        h for h in HISTOGRAMS if f"{h}_bucket" in served
    }

    def raw_names(expr, seen=()):
        out = set()
        for n in names_in(expr):
            if n in recorded and n not in seen:
                out |= raw_names(recorded[n], seen + (n,))
            elif n not in recorded:
                out.add(n)
        return out

    def classify(expr):
        """("data" | "pending" | "fail", detail)."""
        expr = expand(expr)
        names = raw_names(expr)
        unknown = sorted(n for n in names if n not in SPEC7 and n not in BUILTIN and n not in served_base)
        if unknown:
            return "fail", f"unknown metric(s) {unknown} (not in SPEC 7, not served): {expr}"
        result, err = prom.query(expr)
        if err:
            return "fail", err
        if result:
            return "data", None
        missing = sorted(n for n in names if n not in served_base and n not in BUILTIN)
        if missing:
            return "pending", tuple(missing)
        return "fail", f"no data, although every metric it reads is served: {expr}"

    # Negative controls: the check itself must catch these.
    for bad in ('memshelf_hits_total{cache="no-such-segment"}', "memshelf_hitz_total", "rate(memshelf_hits_total[5m]"):
        verdict, _ = classify(bad)
        if verdict != "fail":
            errors.append(f"self-check: {bad!r} was classified {verdict}, not fail")

    for where, expr in exprs:
        verdict, detail = classify(expr)
        if verdict == "data":
            with_data += 1
        elif verdict == "pending":
            pending.setdefault(detail, []).append(where)
        else:
            errors.append(f"{where}: {detail}")

    # A few figures of the run, for the log.
    for figure in ("memshelf:hit_ratio:rate5m", "memshelf:evictions:rate5m", "memshelf:used_bytes:ratio"):
        for r in prom.query(figure)[0]:
            print(f"[observability] {figure}{{cache={r['metric'].get('cache')!r}}} = {float(r['value'][1]):.3f}")

    total = len(exprs)
    print(f"[observability] {total} expressions evaluated; {with_data} returned data")
    for missing, wheres in pending.items():
        print(f"[observability] PENDING (no data: {', '.join(missing)} not served yet): {len(wheres)} expression(s)")
        for w in wheres:
            print(f"    {w}")
    for e in errors:
        print(f"[observability] FAIL {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
