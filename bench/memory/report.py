#!/usr/bin/env python3
"""Writes docs/MEMORY.md and its SVG from bench/memory/run.sh's samples and the run's profile."""
import argparse
import csv
import json
import os


def fit_slope(ts, ys):
    """Least-squares slope of ys over ts (units of ys per unit of ts)."""
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var if var else 0.0


def svg(samples, path, title):
    w, h, left, right, top, bottom = 720, 300, 60, 20, 30, 40
    ts = [s[0] / 60 for s in samples]
    ys = [s[1] / 1024 for s in samples]
    tmax = max(ts) or 1
    ymax = max(ys) * 1.1 or 1
    def x(t): return left + (w - left - right) * t / tmax
    def y(v): return h - bottom - (h - top - bottom) * v / ymax
    pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, ys))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2}" y="18" text-anchor="middle">{title}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>']
    for i in range(6):
        v = ymax * i / 5
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{w - right}" y2="{y(v):.1f}" stroke="#ddd"/>')
    step = max(1, round(tmax / 6))
    t = 0
    while t <= tmax + 1e-9:
        parts.append(f'<text x="{x(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{t:g}</text>')
        t += step
    parts.append(f'<text x="{w / 2}" y="{h - 6}" text-anchor="middle">minutes</text>')
    parts.append(f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">RSS (MiB)</text>')
    parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>')
    parts.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(fromfile_prefix_chars="@")  # @FILE: one argument per line
    ap.add_argument("--dir", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--status", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--interval", type=float, required=True)
    ap.add_argument("--load", nargs=2, required=True)
    ap.add_argument("--cores", required=True)
    a = ap.parse_args()

    with open(os.path.join(a.dir, "rss.csv")) as f:
        samples = [(float(r["t_seconds"]), int(r["rss_kib"]), int(r["hwm_kib"])) for r in csv.DictReader(f)]
    if len(samples) < 4:
        raise SystemExit(f"{a.dir}/rss.csv: only {len(samples)} samples")
    steps = evals = 0
    last_epoch = 0  # epochs are numbered from 1
    last_acc = None
    with open(os.path.join(a.dir, "run", "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if m.get("kind") == "step":
                steps = max(steps, m["step"] + 1)
                last_epoch = max(last_epoch, m.get("epoch", 0))
            elif m.get("kind") == "eval":
                evals += 1
                last_acc = m.get("top1", last_acc)
    profile_path = os.path.join(a.dir, "profile.json")
    nodes = json.load(open(profile_path))["nodes"] if os.path.exists(profile_path) else []
    pipeline = json.load(open(os.path.join(a.dir, "run", "pipeline.json")))
    max_in_flight = pipeline.get("runtime", {}).get("max_in_flight")
    sources = [n for n in nodes if n.get("peak_in_flight", 0) > 0 or n["type"].endswith("source")]

    end = samples[-1][0]
    warm = min(300.0, end / 6)  # the first minutes: model, decoders, allocator pools come up
    steady = [s for s in samples if s[0] >= warm]
    mib = lambda kib: kib / 1024
    first, last = steady[0], steady[-1]
    lo, hi = min(s[1] for s in steady), max(s[1] for s in steady)
    slope = fit_slope([s[0] / 3600 for s in steady], [mib(s[1]) for s in steady])  # MiB per hour
    half = [s for s in steady if s[0] >= (warm + end) / 2]
    slope_half = fit_slope([s[0] / 3600 for s in half], [mib(s[1]) for s in half]) if len(half) > 3 else float("nan")

    marks = []
    for minute in [1, 2, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120]:
        if minute * 60 > end + a.interval:
            break
        s = min(samples, key=lambda s: abs(s[0] - minute * 60))
        marks.append((minute, s))
    if not marks or end - marks[-1][1][0] > a.interval:
        marks.append((end / 60, samples[-1]))

    svg_path = os.path.splitext(a.doc)[0] + "_rss.svg"
    svg(samples, svg_path, "resident memory of sefar run pipelines/quickstart.json")

    status_text = {143: "143 (stopped by SIGTERM as planned: checkpoint written)", 0: "0 (the run ended by itself)"}
    lines = [
        "# Resident memory over a long CPU run",
        "",
        f"Generated by `DURATION={a.duration:g} bash bench/memory/run.sh` at commit `{a.commit}` "
        f"({a.cores} cores; load average at start {' '.join(a.load[0].split())}, at end {' '.join(a.load[1].split())}). "
        "Every figure below is computed by `bench/memory/report.py` from the samples in "
        "`data/generated/bench_memory/rss.csv` and the run's own metrics and profile.",
        "",
        f"The run: `sefar run pipelines/quickstart.json --set epochs=100000` (SeFAR on the quickstart's synthetic "
        f"dataset: labeled, unlabeled and validation clips decoded on the fly, EMA teacher, an evaluation after "
        f"every epoch), sampled every {a.interval:g} s (VmRSS from /proc), stopped with SIGTERM after "
        f"{end / 60:.1f} min. Exit status {status_text.get(a.status, a.status)}. It trained {steps} steps "
        f"over {last_epoch} epochs and evaluated {evals} times"
        + (f" (last validation top-1 {100 * last_acc:.1f}%)." if last_acc is not None and last_acc <= 1 else "."),
        "",
        "| time | RSS | peak RSS so far (VmHWM) |",
        "|---|---|---|",
    ]
    for minute, s in marks:
        lines.append(f"| {minute:.1f} min | {mib(s[1]):.0f} MiB | {mib(s[2]):.0f} MiB |")
    lines += [
        "",
        f"After the first {warm / 60:.0f} min (start-up: model, decoders, allocator pools):",
        "",
        f"- RSS stayed between {mib(lo):.0f} and {mib(hi):.0f} MiB (range {mib(hi - lo):.0f} MiB, "
        f"{100 * (hi - lo) / hi:.1f}% of the peak); from {mib(first[1]):.0f} MiB at {first[0] / 60:.1f} min "
        f"to {mib(last[1]):.0f} MiB at {last[0] / 60:.1f} min.",
        f"- Least-squares trend: {slope:+.1f} MiB per hour over that span, {slope_half:+.1f} MiB per hour "
        "over its second half.",
        "",
        "Lowest and highest RSS in each 5-minute window (a leak shows as rising window minima; a buffer "
        "that comes and goes, as a window whose maximum is above its minimum):",
        "",
        "| window | lowest | highest |",
        "|---|---|---|",
    ]
    w0 = 0.0
    minima = []
    while w0 < end:
        window = [s for s in samples if w0 <= s[0] < w0 + 300]
        if len(window) > 1 and window[-1][0] - window[0][0] >= 60:  # a last sliver is no window
            if w0 >= warm:
                minima.append(min(s[1] for s in window))
            lines.append(f"| {w0 / 60:.0f}-{min(end, w0 + 300) / 60:.0f} min | {mib(min(s[1] for s in window)):.0f} MiB "
                         f"| {mib(max(s[1] for s in window)):.0f} MiB |")
        w0 += 300
    if len(minima) > 1:
        lines += ["", f"Window minima after start-up go from {mib(minima[0]):.0f} MiB to {mib(minima[-1]):.0f} MiB "
                      f"({mib(minima[-1] - minima[0]):+.0f} MiB over {len(minima) - 1} windows)."]
    lines += [
        "",
        f"![RSS over time]({os.path.basename(svg_path)})",
        "",
        "## Items in flight",
        "",
        f"Each source holds a budget of items alive at once (`runtime.max_in_flight` = {max_in_flight}, "
        "split among the sources); an item's budget ticket returns only when the item and everything made "
        "from it (decoded frames, views, the batch holding them) are released, so decoded clips waiting for "
        "the training node cannot pile up. Peak over the whole run, from the profile:",
        "",
        "| source | peak items in flight | items out |",
        "|---|---|---|",
    ]
    for n in sources:
        lines.append(f"| `{n['id']}` ({n['type']}) | {n.get('peak_in_flight', 0)} | {n.get('items_out', 0)} |")
    if not sources:
        lines.append("| (no profile: the run did not finish cleanly) | | |")
    lines.append("")
    tmp = a.doc + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, a.doc)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
