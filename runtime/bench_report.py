"""kws-bench's report: the Markdown tables, the ratios against a baseline, and the targets.

Everything here reads the result dictionary that :mod:`kws.runtime.bench` measured (the same
object it writes as ``bench.json``) and measures nothing itself.
"""

from __future__ import annotations

from typing import Any

from kws.runtime.model import DEFAULT_MODEL_NAME

#: Targets for the shipped int8 model on the 2-core x86 development machine (reported, not asserted).
TARGETS = {
    "total_median_ms_1_thread": 2.0,
    "cpu_share_250ms_hop": 0.01,
    "peak_rss_mb": 80.0,
    "runtime_install_mb": 200.0,
}

MB = 1e6


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"


def _rss_mb(m: dict[str, Any]) -> float:
    peak = m["peak_rss"]
    return (peak.get("vm_hwm_bytes") or peak["ru_maxrss_bytes"]) / MB


def _run(model: dict[str, Any], threads: int) -> dict[str, Any] | None:
    return next((r for r in model["runs"] if r["threads"] == threads), None)


def _hop(run: dict[str, Any], hop_ms: float) -> dict[str, Any] | None:
    return next((h for h in run["hops"] if h["hop_ms"] == hop_ms), None)


def latency_table(result: dict[str, Any]) -> str:
    hops = result["settings"]["hop_ms"]
    head = ["model", "quant", "thr", "features ms p50", "invoke ms p50/p90/p99",
            "total ms p50/p90/p99", "CPU ms p50", *[f"CPU @{h:g} ms hop" for h in hops],
            *[f"RTF @{h:g} ms" for h in hops]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in result["models"]:
        for r in m["runs"]:
            inv, tot = r["invoke_ms"], r["total_ms"]
            cells = [m["name"], m["quantization"], str(r["threads"]), _ms(r["feature_ms"]["median"]),
                     "/".join(_ms(inv[k]) for k in ("median", "p90", "p99")),
                     "/".join(_ms(tot[k]) for k in ("median", "p90", "p99")),
                     _ms(r["total_cpu_ms"]["median"]),
                     *[_pct(h["cpu_share"]) for h in r["hops"]],
                     *[f"{h['real_time_factor']:.4f}" for h in r["hops"]]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def footprint_table(result: dict[str, Any]) -> str:
    head = ["model", "quant", "M MACs", "file MB", "peak RSS MB", "backend", "XNNPACK", "windows"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in result["models"]:
        xnn = {True: "yes", False: "no", None: "unknown"}[m["xnnpack"]]
        cells = [m["name"], m["quantization"], f"{m['macs']['total'] / 1e6:,.2f}",
                 f"{m['file_bytes'] / MB:.3g}", f"{_rss_mb(m):.1f}", m["backend"], xnn,
                 str(min(r["windows"] for r in m["runs"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_rows(result: dict[str, Any], baseline: str) -> list[dict[str, Any]]:
    """Ratios of every model to the baseline (model / baseline; < 1 is cheaper)."""
    base = next(m for m in result["models"] if m["name"] == baseline)
    hop0 = result["settings"]["hop_ms"][0]

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    rows = []
    for m in result["models"]:
        for r in m["runs"]:
            b = _run(base, r["threads"])
            if b is None:
                continue
            h, bh = _hop(r, hop0), _hop(b, hop0)
            rows.append({
                "model": m["name"], "threads": r["threads"],
                "total_median": ratio(r["total_ms"]["median"], b["total_ms"]["median"]),
                "invoke_median": ratio(r["invoke_ms"]["median"], b["invoke_ms"]["median"]),
                "feature_median": ratio(r["feature_ms"]["median"], b["feature_ms"]["median"]),
                f"cpu_share_{hop0:g}ms": ratio(h and h["cpu_share"], bh and bh["cpu_share"]),
                "macs": ratio(m["macs"]["total"], base["macs"]["total"]),
                "file_bytes": ratio(m["file_bytes"], base["file_bytes"]),
                "peak_rss": ratio(_rss_mb(m), _rss_mb(base)),
            })
    return rows


def compare_table(rows: list[dict[str, Any]], baseline: str, hop0: float) -> str:
    keys = ["total_median", "invoke_median", "feature_median", f"cpu_share_{hop0:g}ms", "macs",
            "file_bytes", "peak_rss"]
    head = ["model", "thr", "total p50", "invoke p50", "features p50", f"CPU @{hop0:g} ms",
            "MACs", "file", "RSS"]
    lines = [f"Ratios against {baseline} (model / baseline; below 1 is cheaper):", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["model"], str(row["threads"])]
        cells += ["-" if row[k] is None else f"{row[k]:.3g}x" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_targets(result: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The issue's targets for one model (normally the shipped int8) and for the install."""
    out: dict[str, Any] = {"model": name, "targets": dict(TARGETS), "checks": {}}
    install_mb = result["runtime"]["install"]["total_bytes"] / MB
    out["checks"]["runtime_install_mb"] = {"value": install_mb,
                                           "met": install_mb <= TARGETS["runtime_install_mb"]}
    model = next((m for m in result["models"] if m["name"] == name), None)
    if model is None:
        return out
    run1 = _run(model, 1)
    if run1 is not None:
        v = run1["total_ms"]["median"]
        out["checks"]["total_median_ms_1_thread"] = {"value": v,
                                                     "met": v <= TARGETS["total_median_ms_1_thread"]}
        h = _hop(run1, 250.0)
        if h is not None:
            out["checks"]["cpu_share_250ms_hop"] = {"value": h["cpu_share"],
                                                    "met": h["cpu_share"] <= TARGETS["cpu_share_250ms_hop"]}
    rss = _rss_mb(model)
    out["checks"]["peak_rss_mb"] = {"value": rss, "met": rss <= TARGETS["peak_rss_mb"]}
    return out


def render(result: dict[str, Any]) -> str:
    rt = result["runtime"]
    inst = rt["install"]
    host = result["host"]
    load = host.get("load_avg")
    packages = ", ".join(f"{k} {v['bytes'] / MB:.1f}" for k, v in inst["packages"].items())
    parts = [
        f"kws-bench on {host['cpu']} ({host['usable_cpus']} usable CPUs, {host['machine']}), "
        f"backend {rt['backend']} {rt['backend_version'] or ''}, numpy {host['numpy']}"
        f" (BLAS {host['blas'].get('name') or '?'}, OPENBLAS_NUM_THREADS="
        f"{host['blas'].get('OPENBLAS_NUM_THREADS') or 'unset'})"
        + (f", load average {load[0]:.2f} before" if load else "") + ".",
        "",
        latency_table(result),
        "",
        footprint_table(result),
        "",
        f"Runtime import: {rt['import']['import_s'] * 1000:.0f} ms in a fresh process "
        f"(first {rt['import']['first_import_s'] * 1000:.0f} ms; whole `python -c` "
        f"{rt['import']['process_s'] * 1000:.0f} ms; peak RSS after import "
        f"{rt['import']['peak_rss_bytes_after_import'] / MB:.1f} MB).",
        f"Runtime install: {inst['total_bytes'] / MB:.1f} MB for {packages}"
        f" (core {inst['core_bytes'] / MB:.1f} MB; target <= {inst['target_mb']:.0f} MB)"
        + (f"; not installed: {', '.join(inst['missing'])}" if inst["missing"] else "") + ".",
    ]
    targets = result.get("targets")
    if targets:
        labels = {"total_median_ms_1_thread": ("total per window, median, 1 thread", "ms"),
                  "cpu_share_250ms_hop": ("CPU share at a 250 ms hop, 1 thread", "%"),
                  "peak_rss_mb": ("peak RSS", "MB"), "runtime_install_mb": ("runtime install", "MB")}
        who = targets["model"] or f"{DEFAULT_MODEL_NAME} is not in this run"
        parts += ["", f"Targets ({who}):"]
        for key, (label, unit) in labels.items():
            check = targets["checks"].get(key)
            limit = TARGETS[key]
            if check is None:
                parts.append(f"- {label}: not measured in this run")
                continue
            value, lim = (100 * check["value"], 100 * limit) if unit == "%" else (check["value"], limit)
            parts.append(f"- {label}: {value:.3g} {unit} (target <= {lim:g} {unit}): "
                         f"{'met' if check['met'] else 'MISSED'}")
    if result.get("compare"):
        parts += ["", compare_table(result["compare"]["rows"], result["compare"]["baseline"],
                                    result["settings"]["hop_ms"][0])]
    return "\n".join(parts)
