#!/usr/bin/env python3
"""Renders a bench results.json: the Markdown tables, a PNG chart, and the README's table.

    python3 test/bench/report.py                          # build/bench/results.{md,png} from results.json
    python3 test/bench/report.py RESULTS.json --readme README.md   # also rewrite the README's table
    python3 test/bench/report.py A.json B.json --out DIR  # one report from several runs (merge)

bench.py calls this after every run, so results.md and results.png always come from the same
results.json. The README's performance table sits between the marker comments README_BEGIN and
README_END and is only ever rewritten from a results file (--readme), never by hand.

The chart is drawn by gnuplot (Debian's gnuplot-nox, which bench.py --deps installs): one
apt package like fio and rsync, where matplotlib would mean a virtualenv and ~40 MiB of wheels
for a bar chart, and this harness stays on Python's standard library.

Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MIB = 1 << 20
README_BEGIN = "<!-- bench-table:begin (test/bench/report.py --readme writes this table from a results.json) -->"
README_END = "<!-- bench-table:end -->"

# Rows that are not tools: the device's limits turned into the least time a dataset can take.
LIMIT_RANDOM = "limit-random"
LIMIT_SEQ = "limit-seq"


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def merge(reports: list[dict]) -> dict:
    """One report from several bench runs (e.g. cells re-run or added later): their results and
    scenarios in order; a cell (dataset, condition) that a later run has too is that run's, whole
    (all its tools were timed together there), in the place where the cell first appeared, so a
    re-run cell keeps its column.  Each result keeps its own run's fio numbers (cold limit rows),
    and the header names every run (date, commit, reps).  The first run's meta is the base."""
    if len(reports) == 1:
        return reports[0]
    out = {"meta": dict(reports[0].get("meta", {})), "results": [], "scenarios": []}
    out["meta"]["runs"] = []
    for rep in reports:
        meta = rep.get("meta", {})
        out["meta"]["runs"].append({"date": meta.get("date"), "git": meta.get("machine", {}).get("git"),
                                    "reps": meta.get("args", {}).get("reps"),
                                    "held": bool(meta.get("page_reporting_held"))})
        cells = {(r["dataset"], r["condition"]) for r in rep.get("results", [])}
        out["results"] = [r for r in out["results"] if (r["dataset"], r["condition"]) not in cells]
        for r in rep.get("results", []):
            out["results"].append({**r, "physical": r.get("physical") or meta.get("physical")})
        cells = {(r["dataset"], r["condition"]) for r in rep.get("scenarios", [])}
        out["scenarios"] = [r for r in out["scenarios"] if (r["dataset"], r["condition"]) not in cells]
        out["scenarios"] += rep.get("scenarios", [])
    # Cells in the order they first appeared (sorted() is stable: a cell's rows keep theirs).
    first: dict[tuple[str, str], int] = {}
    for rep in reports:
        for r in rep.get("results", []) + rep.get("scenarios", []):
            first.setdefault((r["dataset"], r["condition"]), len(first))
    for key in ("results", "scenarios"):
        out[key] = sorted(out[key], key=lambda r: first[(r["dataset"], r["condition"])])
    return out


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def sections(report: dict) -> list[dict]:
    """Groups results by (dataset, condition) in run order: [{dataset, condition, ..., rows: [...]}].

    Each row is {tool, label, median, min, max, user, sys, rss, ok, runs, verified}. For cold
    conditions, when meta.physical has fio's numbers, two more rows give the device floor:
    files x one 4 KiB random read at the measured IOPS, and bytes at the sequential bandwidth.
    The random-read row's user/sys are fio's own CPU for that many reads, when it was recorded.
    """
    out: dict[tuple[str, str], dict] = {}
    for r in report.get("results", []):
        key = (r["dataset"], r["condition"])
        if key not in out:
            out[key] = {"dataset": r["dataset"], "condition": r["condition"],
                        "dataset_description": r.get("dataset_description", ""),
                        "condition_description": r.get("condition_description", ""),
                        "files": r.get("files"), "bytes": r.get("bytes"), "cold": r.get("cold", False),
                        "physical": r.get("physical"), "rows": []}
        s = r["summary"]
        out[key]["rows"].append({
            "tool": r["tool"], "label": r.get("label", r["tool"]), "median": _num(s["median_s"]),
            "min": _num(s["min_s"]), "max": _num(s["max_s"]), "user": _num(s["user_s"]), "sys": _num(s["sys_s"]),
            "rss": _num(s["peak_rss_mib"]), "ok": s["ok_runs"], "runs": s["runs"],
            "verified": ", ".join(s["verified"])})
    run_phys = report.get("meta", {}).get("physical") or {}
    for sec in out.values():
        if not sec["cold"] or sec["files"] is None:
            continue
        phys = sec["physical"] or run_phys
        for tool, short, label, t in [
            (LIMIT_RANDOM, "limit: random 4 KiB", f"physical limit: 1 random 4 KiB read per file at {phys.get('randread_iops', 0):,.0f} IOPS",
             sec["files"] / phys["randread_iops"] if phys.get("randread_iops") else None),
            (LIMIT_SEQ, "limit: sequential", f"physical limit: all bytes at {phys.get('seqread_bytes_per_s', 0) / MIB:,.0f} MiB/s",
             sec["bytes"] / phys["seqread_bytes_per_s"] if phys.get("seqread_bytes_per_s") else None),
        ]:
            if t is not None:
                user = sys_ = None
                if tool == LIMIT_RANDOM and "randread_sys_s_per_io" in phys:
                    user = sec["files"] * phys.get("randread_user_s_per_io", 0.0)
                    sys_ = sec["files"] * phys["randread_sys_s_per_io"]
                sec["rows"].append({"tool": tool, "label": label, "short": short, "median": t, "min": t, "max": t, "user": user,
                                    "sys": sys_, "rss": None, "ok": None, "runs": None, "verified": "fio"})
    return list(out.values())


def _ok(x: float | None) -> bool:
    return x is not None and not math.isnan(x) and x > 0


def _base(sec: dict) -> float | None:
    return next((r["median"] for r in sec["rows"] if r["tool"] == "cp-r" and _ok(r["median"])), None)


def _esc(label: str) -> str:
    return label.replace("|", "\\|")


def section_table(sec: dict) -> str:
    base = _base(sec)
    files, total = sec["files"] or 0, sec["bytes"] or 0
    lines = [
        f"### {sec['dataset']} ({sec['dataset_description']}), {sec['condition']}: {sec['condition_description']}",
        "",
        "| tool | median s | min–max s | vs cp -r | files/s | MiB/s | user s | sys s | peak RSS MiB | runs ok | verified |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sec["rows"]:
        m = r["median"]
        ratio = f"{base / m:.2f}x" if base and _ok(m) else "–"
        rate = (f"{files / m:,.0f} | {total / MIB / m:,.1f}") if _ok(m) else "– | –"
        if r["runs"] is None:  # a physical-limit row (with fio's CPU for that many reads, if known)
            cpu = f"{r['user']:.2f} | {r['sys']:.2f}" if r.get("sys") is not None else "– | –"
            lines.append(f"| *{_esc(r['label'])}* | {m:.3f} | – | {ratio} | {rate} | {cpu} | – | – | fio |")
            continue
        lines.append(
            f"| {_esc(r['label'])} | {m:.3f} | {r['min']:.3f}–{r['max']:.3f} | {ratio} | {rate} | "
            f"{r['user']:.2f} | {r['sys']:.2f} | {r['rss']:.1f} | {r['ok']}/{r['runs']} | {r['verified']} |")
    lines.append("")
    return "\n".join(lines)


def scenario_sections(report: dict) -> list[dict]:
    """The scenario rows (re-runs, options) grouped by (dataset, condition) in run order:
    [{dataset, condition, ..., rows: [...]}]. Each row is {scenario, scenario_label, tool, label,
    available, reason, median, min, max, full, ratio, ok, runs, verified, killed_at}: median etc.
    of the timed scenario runs, full the median of the full copies they are compared with, ratio
    the median over reps of (scenario run / full copy of the same rep)."""
    out: dict[tuple[str, str], dict] = {}
    for r in report.get("scenarios", []):
        key = (r["dataset"], r["condition"])
        if key not in out:
            out[key] = {"dataset": r["dataset"], "condition": r["condition"], "cold": r.get("cold", False),
                        "dataset_description": r.get("dataset_description", ""),
                        "condition_description": r.get("condition_description", ""), "rows": []}
        row = {"scenario": r["scenario"], "scenario_label": r.get("scenario_label", r["scenario"]),
               "tool": r["tool"], "label": r.get("label", r["tool"]), "available": r.get("available", True),
               "reason": r.get("reason", "")}
        if row["available"]:
            s, f = r["summary"], r["full_summary"]
            kill = [k for k in r.get("killed_at") or [] if k is not None]
            row.update({"median": _num(s["median_s"]), "min": _num(s["min_s"]), "max": _num(s["max_s"]),
                        "full": _num(f["median_s"]), "ratio": _num(r.get("ratio")), "ok": s["ok_runs"],
                        "runs": s["runs"], "verified": ", ".join(s["verified"]),
                        "killed_at": sorted(kill)[len(kill) // 2] if kill else None})
        out[key]["rows"].append(row)
    return list(out.values())


def _noop_base(sec: dict) -> float | None:
    return next((r["median"] for r in sec["rows"] if r["scenario"] == "noop" and r["tool"] == "uring-sync"
                 and r["available"] and _ok(r["median"])), None)


def scenario_table(sec: dict) -> str:
    warmth = "cold: caches dropped before every timed run" if sec["cold"] else "warm caches"
    lines = [
        f"### Re-runs and options: {sec['dataset']} ({sec['dataset_description']}), {sec['condition']}: "
        f"{sec['condition_description']} ({warmth})",
        "",
        "Each timed run next to a full copy into a fresh filesystem in the same rep (by the same tool; "
        "uring-sync's for resume, --verify, --fsync and -a); ratio = median over reps of run / that full copy.",
        "",
        "| scenario | tool | median s | min–max s | full copy s | ratio to full copy | no-op vs uring-sync | runs ok | verified |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    noop_base = _noop_base(sec)
    for r in sec["rows"]:
        name = r["scenario_label"]
        if not r["available"]:
            lines.append(f"| {_esc(name)} | {_esc(r['label'])} | – | – | – | {_esc(r['reason'])} | – | – | – |")
            continue
        if r["killed_at"] is not None:
            name += f" (killed at {r['killed_at']:.0%} of the files)"
        ratio = f"{r['ratio']:.2f}" if _ok(r["ratio"]) else "–"
        vs = "–"
        if r["scenario"] == "noop" and noop_base and _ok(r["median"]):
            vs = f"{r['median'] / noop_base:.1f}x"
        lines.append(f"| {_esc(name)} | {_esc(r['label'])} | {r['median']:.3f} | {r['min']:.3f}–{r['max']:.3f} | "
                     f"{r['full']:.3f} | {ratio} | {vs} | {r['ok']}/{r['runs']} | {_esc(r['verified'])} |")
    lines.append("")
    return "\n".join(lines)


def readme_scenario_table(report: dict) -> str:
    """The scenario rows for the README: scenario and tool down, dataset/condition across."""
    secs = scenario_sections(report)
    if not secs:
        return ""
    keys: dict[tuple[str, str], str] = {}
    for sec in secs:
        for r in sec["rows"]:
            keys.setdefault((r["scenario"], r["tool"]), f"{r['scenario_label']}: `{r['label']}`")
    lines = [
        "Re-runs and options: median seconds, and in brackets the median ratio to a full copy by the same tool "
        "(uring-sync's for resume, `--verify`, `--fsync`, `-a`) timed in the same rep.",
        "",
        "| scenario | " + " | ".join(f"{s['dataset']}, {s['condition']}" for s in secs) + " |",
        "|---|" + "---:|" * len(secs),
    ]
    for (sc, tool), name in keys.items():
        cells = []
        for sec in secs:
            r = next((r for r in sec["rows"] if r["scenario"] == sc and r["tool"] == tool), None)
            if r is None:
                cells.append("–")
            elif not r["available"]:
                cells.append("not available")
            elif not _ok(r["median"]):
                cells.append("failed")
            else:
                cell = f"{r['median']:.2f} s ({r['ratio']:.2f} of full)" if _ok(r["ratio"]) else f"{r['median']:.2f} s"
                cells.append(f"**{cell}**" if tool == "uring-sync" else cell)
        lines.append(f"| {_esc(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(report: dict) -> str:
    meta = report.get("meta", {})
    info = meta.get("machine", {})
    reps = meta.get("args", {}).get("reps", "?")
    line = (f"{meta.get('date', '?')} · kernel {info.get('kernel', '?')} · {info.get('cpus', '?')} CPUs · "
            f"{info.get('mem_total', '?')} · commit {info.get('git', '?')} · {reps} interleaved runs per tool, "
            "medians; fresh destination filesystem per run; 'vs cp -r' = cp -r median / tool median.")
    runs = meta.get("runs")
    if runs:
        line = (f"kernel {info.get('kernel', '?')} · {info.get('cpus', '?')} CPUs · {info.get('mem_total', '?')} · "
                + "; ".join(f"run {i + 1}: {r['date']}, commit {r['git']}, {r['reps']} interleaved runs per tool"
                            + (", free page reporting held" if r.get("held") else "")
                            for i, r in enumerate(runs))
                + " (cells in run order) · medians; fresh destination filesystem per run; "
                "'vs cp -r' = cp -r median / tool median.")
    if not runs and meta.get("page_reporting_held"):
        line += " Free page reporting held during the run (the host's page faults are not timed)."
    phys = meta.get("physical")
    if phys:
        line += (f" Device under the cold sources ({phys['device']}), fio {phys['runtime_s']} s each, O_DIRECT: "
                 f"{phys['randread_iops']:,.0f} random 4 KiB reads/s at depth 64, "
                 f"{phys['seqread_bytes_per_s'] / MIB:,.0f} MiB/s sequential 1 MiB reads.")
    return line


def markdown(report: dict) -> str:
    return "\n".join(["## uring-sync benchmark", "", header(report), "",
                      *(section_table(s) for s in sections(report)),
                      *(scenario_table(s) for s in scenario_sections(report))])


def readme_table(report: dict) -> str:
    """One compact table for the README: tools down, dataset/condition across, median and ratio."""
    secs = sections(report)
    tools: dict[str, str] = {}
    generic = {LIMIT_RANDOM: "physical limit: 1 random 4 KiB read per file at fio's IOPS",
               LIMIT_SEQ: "physical limit: all bytes at fio's sequential bandwidth"}
    for sec in secs:
        for r in sec["rows"]:
            # Merged runs may have measured the device differently: the numbers are in the
            # header and in results.md, the row name stays generic.
            tools.setdefault(r["tool"], generic.get(r["tool"], r["label"]))
    meta = report.get("meta", {})
    info = meta.get("machine", {})
    runs = meta.get("runs") or [{"date": meta.get("date", "?"), "git": info.get("git", "?"),
                                 "reps": meta.get("args", {}).get("reps", "?"),
                                 "held": bool(meta.get("page_reporting_held"))}]
    lines = [
        f"Medians of interleaved runs on {info.get('cpus', '?')} CPUs, kernel {info.get('kernel', '?')} ("
        + "; ".join(f"{r['reps']} runs per tool, {str(r['date'])[:16].replace('T', ' ')} UTC, commit {r['git']}"
                    + (", free page reporting held" if r.get("held") else "")
                    for r in runs)
        + "); each run into a freshly mounted destination; ratio = `cp -r` / tool.",
        "",
        "| tool | " + " | ".join(f"{s['dataset']}, {s['condition']}" for s in secs) + " |",
        "|---|" + "---:|" * len(secs),
    ]
    for tool, label in tools.items():
        cells = []
        for sec in secs:
            r = next((r for r in sec["rows"] if r["tool"] == tool), None)
            if r is None or not _ok(r["median"]):
                cells.append("–")
                continue
            base = _base(sec)
            cell = f"{r['median']:.2f} s" + (f" ({base / r['median']:.1f}x)" if base and tool != "cp-r" else "")
            cells.append(f"**{cell}**" if tool == "uring-sync" else cell)
        name = f"*{label}*" if tool in (LIMIT_RANDOM, LIMIT_SEQ) else f"`{label}`"
        lines.append(f"| {_esc(name)} | " + " | ".join(cells) + " |")
    scenarios = readme_scenario_table(report)
    if scenarios:
        lines += ["", scenarios]
    return "\n".join(lines)


def update_readme(path: str, table: str) -> None:
    with open(path) as f:
        text = f.read()
    i, j = text.find(README_BEGIN), text.find(README_END)
    if i < 0 or j < i:
        raise SystemExit(f"report: {path} has no {README_BEGIN!r} ... {README_END!r} markers")
    text = text[:i + len(README_BEGIN)] + "\n" + table + "\n" + text[j:]
    with open(path, "w") as f:
        f.write(text)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', "'") + '"'


def gnuplot_script(report: dict, png: str) -> str:
    """A bar chart per dataset/condition: median seconds, min–max error bars, the device limits grey."""
    secs = sections(report)
    width, panel = 1000, 340
    lines = [
        f"set terminal pngcairo size {width},{panel * max(1, len(secs))} font 'sans,9'",
        f"set output {_quote(png)}",
        f"set multiplot layout {max(1, len(secs))},1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.7",
        "set ylabel 'seconds (median; bars: min–max)'",
        "set yrange [0:*]",
        "set grid ytics",
        "set xtics rotate by 25 right nomirror",
        "set bmargin 6",
        "set lmargin 10",
        "set rmargin 3",
        "set offsets 0.5, 0.5, 0, 0",
        "set key off",
    ]
    for n, sec in enumerate(secs):
        lines.append(f"$s{n} << EOD")
        for i, r in enumerate(sec["rows"]):
            color = (0xB0B0B0 if r["runs"] is None else 0xD9480F if r["tool"].startswith("uring-sync")
                     else 0x1971C2)
            med = r["median"] if _ok(r["median"]) else float("nan")
            lines.append(f"{i} {_quote(r.get('short', r['label']))} {med:.6g} {r['min']:.6g} {r['max']:.6g} {color}")
        lines.append("EOD")
        lines.append(f"set title {_quote(sec['dataset'] + ' (' + sec['dataset_description'] + '), ' + sec['condition'])}")
        lines.append(f"plot $s{n} using 1:3:6:xtic(2) with boxes lc rgb variable, "
                     f"'' using 1:3:4:5 with yerrorbars lc rgb 'black' pt -1, "
                     f"'' using 1:5:(sprintf('%.2f', $3)) with labels offset 0,0.8")
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def chart(report: dict, png: str) -> bool:
    """Writes png with gnuplot; False (and nothing written) when gnuplot is not installed."""
    if not sections(report) or shutil.which("gnuplot") is None:
        return False
    r = subprocess.run(["gnuplot"], input=gnuplot_script(report, png), text=True, capture_output=True)
    if r.returncode != 0:
        print(f"report: gnuplot failed: {r.stderr.strip()}", file=sys.stderr)
        return False
    return True


def write_all(report: dict, out_dir: str) -> str:
    """results.md and results.png in out_dir; returns the Markdown."""
    md = markdown(report)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md + "\n")
    if not chart(report, os.path.join(out_dir, "results.png")):
        print("report: no chart (gnuplot missing: make bench-deps)", file=sys.stderr)
    return md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="*", default=[os.path.join(REPO, "build", "bench", "results.json")],
                    help="results.json of one run, or of several runs to merge into one report")
    ap.add_argument("--out", default=None, help="where results.md and results.png go (default: beside RESULTS)")
    ap.add_argument("--readme", default=None, metavar="README.md",
                    help="also rewrite the table between the bench-table markers of this file")
    a = ap.parse_args()
    report = merge([load(p) for p in a.results])
    out = a.out or os.path.dirname(os.path.abspath(a.results[0]))
    os.makedirs(out, exist_ok=True)
    write_all(report, out)
    if a.readme:
        update_readme(a.readme, readme_table(report))
        print(f"report: rewrote the table in {a.readme} from {', '.join(a.results)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
