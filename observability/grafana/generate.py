#!/usr/bin/env python3
"""Writes memshelf-dashboard.json, the Grafana dashboard for memshelf.

    python3 observability/grafana/generate.py          # rewrite the JSON
    python3 observability/grafana/generate.py --check  # exit 1 if it is stale

The JSON is what users import; this script is how it is maintained (one
place per panel, ids and positions computed). Rows follow the field guide:
executive (the SLIs at a glance), on-call (is it healthy, per segment and
per agent), debug (the counters behind them). Every PromQL expression here is
evaluated against a real Prometheus by scripts/test-observability.sh.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("memshelf-dashboard.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance",cache=~"$cache"'  # per-segment series
ASEL = 'job=~"$job",instance=~"$instance"'  # agent series (no cache label)
RI = "$__rate_interval"


def rate(metric, by="", sel=SEL):
    inner = f"rate({metric}{{{sel}}}[{RI}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def hit_ratio(by=""):
    hits = rate("memshelf_hits_total", by)
    gets = (
        f"sum by ({by}) (rate(memshelf_hits_total{{{SEL}}}[{RI}]) + rate(memshelf_misses_total{{{SEL}}}[{RI}]))"
        if by
        else f"sum(rate(memshelf_hits_total{{{SEL}}}[{RI}]) + rate(memshelf_misses_total{{{SEL}}}[{RI}]))"
    )
    return f"{hits} / {gets}"


def quantile(q, metric, by, sel):
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


def target(expr, legend="", ref="A"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def targets(*pairs):
    return [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(pairs)]


def stat(title, desc, expr, unit, thresholds=None, w=4):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "w": w,
        "h": 4,
        "targets": [target(expr)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "decimals": 2,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
        },
    }


def series(title, desc, tgts, unit, w=8, h=8, min0=True, maxv=None):
    defaults = {"unit": unit, "custom": {"drawStyle": "line", "fillOpacity": 10}}
    if min0:
        defaults["min"] = 0
    if maxv is not None:
        defaults["max"] = maxv
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "w": w,
        "h": h,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        },
    }


def steps(*pairs):
    return [{"color": c, "value": v} for c, v in pairs]


EXECUTIVE = [
    stat(
        "Hit ratio",
        "Gets that found a live entry, over all selected segments.",
        hit_ratio(),
        "percentunit",
        steps(("red", None), ("orange", 0.7), ("green", 0.9)),
    ),
    stat(
        "Read latency p95",
        "95th percentile of sampled get latency (memshelf_op_duration_seconds, op=get).",
        quantile(0.95, "memshelf_op_duration_seconds", "le", f'op="get",{SEL}'),
        "s",
        steps(("green", None), ("orange", 0.00001), ("red", 0.0001)),
    ),
    stat(
        "Evictions/s",
        "Entries evicted to make room, per second.",
        rate("memshelf_evictions_total"),
        "ops",
    ),
    stat(
        "Memory used",
        "Bytes of the logs holding items over the bytes that can hold items (memshelf_data_bytes; the capacity where the exporter lacks it). A full cache evicts: see evictions/s.",
        f"sum(memshelf_used_bytes{{{SEL}}}) / sum(memshelf_data_bytes{{{SEL}}} or memshelf_capacity_bytes{{{SEL}}})",
        "percentunit",
        steps(("green", None), ("orange", 0.8), ("red", 0.95)),
    ),
    stat(
        "Hot-key share",
        "The top key's share of sampled hits (hot-key skew): near 1 means one key takes the traffic.",
        f"max(memshelf_hot_key_share{{{SEL}}})",
        "percentunit",
        steps(("green", None), ("orange", 0.2), ("red", 0.5)),
    ),
    stat(
        "Agents unhealthy",
        "Hosts whose agent is disconnected from its broker or keeps its segments degraded (writes capped at degraded_ttl).",
        "sum(max by (instance) ("
        f'label_replace(1 - memshelf_agent_connected{{{ASEL}}}, "m", "connected", "", "")'
        f' or label_replace(memshelf_agent_degraded{{{ASEL}}}, "m", "degraded", "", "")))',
        "none",
        steps(("green", None), ("red", 1)),
    ),
]

ONCALL = [
    series(
        "Hit ratio by segment",
        "hits / (hits + misses) per segment and host.",
        targets((hit_ratio("instance, cache"), "{{cache}} @ {{instance}}")),
        "percentunit",
        maxv=1,
    ),
    series(
        "Evictions and expirations /s",
        "Evictions: the segment is full and makes room. Expirations: TTLs passing.",
        targets(
            (rate("memshelf_evictions_total", "instance, cache"), "evicted {{cache}} @ {{instance}}"),
            (rate("memshelf_expirations_total", "instance, cache"), "expired {{cache}} @ {{instance}}"),
        ),
        "ops",
    ),
    series(
        "Memory used %",
        "Per segment: used_bytes / data_bytes (the space for items).",
        targets(
            (
                f"memshelf_used_bytes{{{SEL}}} / (memshelf_data_bytes{{{SEL}}} or memshelf_capacity_bytes{{{SEL}}})",
                "{{cache}} @ {{instance}}",
            )
        ),
        "percentunit",
        maxv=1,
    ),
    series(
        "Read latency p95 / p99 by segment",
        "Sampled get latency per segment.",
        targets(
            (
                quantile(0.95, "memshelf_op_duration_seconds", "instance, cache, le", f'op="get",{SEL}'),
                "p95 {{cache}} @ {{instance}}",
            ),
            (
                quantile(0.99, "memshelf_op_duration_seconds", "instance, cache, le", f'op="get",{SEL}'),
                "p99 {{cache}} @ {{instance}}",
            ),
        ),
        "s",
    ),
    series(
        "Agent: connected and degraded",
        "1 = connected to the broker; degraded = 1 while writes are capped at degraded_ttl.",
        targets(
            (f"memshelf_agent_connected{{{ASEL}}}", "connected {{instance}}"),
            (f"memshelf_agent_degraded{{{ASEL}}}", "degraded {{instance}}"),
            (f"up{{{ASEL}}}", "scrape up {{instance}}"),
        ),
        "none",
        maxv=1,
    ),
    series(
        "Agent: invalidation lag p50 / p99",
        "Receive time minus the message's ts: how long a host may serve an entry after the origin changed.",
        targets(
            (quantile(0.5, "memshelf_agent_lag_seconds", "instance, le", ASEL), "p50 {{instance}}"),
            (quantile(0.99, "memshelf_agent_lag_seconds", "instance, le", ASEL), "p99 {{instance}}"),
        ),
        "s",
    ),
    series(
        "Agent: gaps by reason",
        "Moments after which invalidations may have been missed; each clears the served segments unless a stream replay covers it.",
        targets(
            (
                f"sum by (instance, reason) (increase(memshelf_agent_gaps_total{{{ASEL}}}[{RI}]))",
                "{{reason}} @ {{instance}}",
            )
        ),
        "short",
    ),
    series(
        "Agent: seconds since the last message",
        "Grows while the feed is silent; with heartbeats it should stay below their interval.",
        targets((f"memshelf_agent_last_message_age_seconds{{{ASEL}}}", "{{instance}}")),
        "s",
    ),
]

DEBUG = [
    series(
        "Gets /s: hits and misses",
        "Per segment.",
        targets(
            (rate("memshelf_hits_total", "cache"), "hits {{cache}}"),
            (rate("memshelf_misses_total", "cache"), "misses {{cache}}"),
        ),
        "ops",
    ),
    series(
        "Op latency p50 / p99 (get, put)",
        "The engine's sampled log2 histograms.",
        targets(
            (quantile(0.5, "memshelf_op_duration_seconds", "op, le", SEL), "p50 {{op}}"),
            (quantile(0.99, "memshelf_op_duration_seconds", "op, le", SEL), "p99 {{op}}"),
        ),
        "s",
    ),
    series(
        "Hot-key share by segment",
        "Top key's share of sampled hits per segment.",
        targets((f"memshelf_hot_key_share{{{SEL}}}", "{{cache}} @ {{instance}}")),
        "percentunit",
        maxv=1,
    ),
    series(
        "Entries",
        "Live entries per segment.",
        targets((f"memshelf_entries{{{SEL}}}", "{{cache}} @ {{instance}}")),
        "short",
    ),
    series(
        "Bytes: used, space for items, capacity",
        "Bytes of the logs holding items, the bytes that can hold items, and the segment's size.",
        targets(
            (f"memshelf_used_bytes{{{SEL}}}", "used {{cache}}"),
            (f"memshelf_data_bytes{{{SEL}}}", "for items {{cache}}"),
            (f"memshelf_capacity_bytes{{{SEL}}}", "capacity {{cache}}"),
        ),
        "bytes",
    ),
    series(
        "Agent: messages /s by result",
        "applied, heartbeat, skipped_origin, other_cache, malformed, unknown_version, dropped, failed.",
        targets(
            (
                f"sum by (instance, result) (rate(memshelf_agent_messages_total{{{ASEL}}}[{RI}]))",
                "{{result}} @ {{instance}}",
            )
        ),
        "ops",
    ),
    series(
        "Agent: flushes and reconnects",
        "Clears of the served segments after a gap, and broker reconnections.",
        targets(
            (
                f"sum by (instance, reason) (increase(memshelf_agent_flushes_total{{{ASEL}}}[{RI}]))",
                "flush {{reason}} @ {{instance}}",
            ),
            (
                f"increase(memshelf_agent_reconnects_total{{{ASEL}}}[{RI}])",
                "reconnects @ {{instance}}",
            ),
        ),
        "short",
    ),
    series(
        "Agent: coherent",
        "0 when a gap was only logged (gap policy log) and entries may be stale.",
        targets((f"memshelf_agent_coherent{{{ASEL}}}", "{{instance}}")),
        "none",
        maxv=1,
    ),
]

ROWS = [
    ("Executive: the SLIs", EXECUTIVE),
    ("On-call: is it healthy?", ONCALL),
    ("Debug: the counters behind them", DEBUG),
]


def variable(name, label, query, include_all=True):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"var-{name}"},
        "definition": query,
        "refresh": 2,
        "includeAll": include_all,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def build():
    panels, pid, y = [], 1, 0
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": pid,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid += 1
        y += 1
        x, rowh = 0, 0
        for p in row:
            w, h = p.pop("w"), p.pop("h")
            if x + w > 24:
                x, y = 0, y + rowh
                rowh = 0
            p["id"] = pid
            p["datasource"] = DS
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            panels.append(p)
            pid += 1
            x += w
            rowh = max(rowh, h)
        y += rowh
    return {
        "title": "memshelf",
        "uid": "memshelf-overview",
        "description": "memshelf segments and agents: hit ratio, latency, evictions, memory, hot keys, invalidation health.",
        "tags": ["memshelf", "cache"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                variable("job", "Job", "label_values(memshelf_capacity_bytes, job)"),
                variable("instance", "Host", 'label_values(memshelf_capacity_bytes{job=~"$job"}, instance)'),
                variable(
                    "cache",
                    "Segment",
                    'label_values(memshelf_capacity_bytes{job=~"$job",instance=~"$instance"}, cache)',
                ),
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def main():
    text = json.dumps(build(), indent=2) + "\n"
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
