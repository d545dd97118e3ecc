#!/usr/bin/env python3
"""Compares the runs of bench/step_nodes/run.sh and writes the report: metrics.jsonl field by field
(timings aside), the quickstart's wall time new/old, and where a step's time goes in each profile."""
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

TIMING = {"seconds", "comm_seconds"}
STEP_NODES = ["teacher", "regulation", "token_mix", "student", "loss", "backward", "optimizer", "ema", "train"]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare(old_dir, new_dir):
    """(records compared, fields compared, fields that differ, largest relative difference)."""
    a, b = records(old_dir / "metrics.jsonl"), records(new_dir / "metrics.jsonl")
    if len(a) != len(b):
        return len(a), 0, [f"record count {len(a)} vs {len(b)}"], math.inf
    fields, differ, worst = 0, [], 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        for k in sorted(set(x) | set(y)):
            if k in TIMING:
                continue
            fields += 1
            if x.get(k) != y.get(k):
                differ.append(f"record {i} ({x.get('kind')}) {k}: {x.get(k)} vs {y.get(k)}")
                if isinstance(x.get(k), (int, float)) and isinstance(y.get(k), (int, float)):
                    worst = max(worst, abs(x[k] - y[k]) / max(abs(x[k]), 1e-12))
                else:
                    worst = math.inf
    return len(a), fields, differ, worst


def busy(profile_path):
    profile = json.loads(profile_path.read_text())
    return {n["id"]: n for n in profile["nodes"]}, profile


def main():
    work, base, doc = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    runs = work / "runs"
    times = {}
    for line in (work / "times.txt").read_text().splitlines():
        which, name, seconds = line.split()
        times.setdefault((which, name), []).append(float(seconds))
    out = ["# The training step as graph nodes, against the single training node",
           "",
           f"`bash bench/step_nodes/run.sh` on this machine ({subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores): "
           f"the old build is commit `{base}` (one `sefar_train` node), the new one this tree (the step as "
           "`train_loop`, `teacher`, `adaptive_regulation`, `tube_token_mix`, `student`, `regulated_loss`, "
           "`backward`, `optimizer`, `ema_update` nodes). Both train on the same clips (`sefar synth --threads 1`, "
           "seed 0), each with its own tree's pipeline files.",
           "",
           "## Same numbers",
           "",
           "Every field of every `metrics.jsonl` record (step losses, learning rate, eta statistics, gradient "
           "norm, epoch records, evaluation top-1/top-5/per-class/confusion), timings aside.",
           "",
           "| run | records | fields compared | fields that differ | largest relative difference |",
           "|---|---|---|---|---|"]
    identical = True
    for name in ["quickstart", "supervised", "no_adareg"]:
        n, fields, differ, worst = compare(runs / f"{name}_old", runs / f"{name}_new")
        identical &= not differ
        out.append(f"| {name} | {n} | {fields} | {len(differ)} | {worst:.3g} |")
        for d in differ[:5]:
            out.append(f"|  | {d} | | | |")
    out += ["", "Identical: " + ("yes, every field." if identical else "no (see above)."), ""]
    old_t, new_t = times[("old", "quickstart")], times[("new", "quickstart")]
    median_ratio = statistics.median(new_t) / statistics.median(old_t)
    best_ratio = min(new_t) / min(old_t)
    pairs = [n / o for o, n in zip(old_t, new_t)]
    out += ["## Wall time",
            "",
            f"The quickstart (`pipelines/quickstart.json`, 24 epochs), whole command, {len(old_t)} runs of each build "
            "interleaved old, new, old, new, ... on an otherwise idle machine. The figure judged is the ratio of the "
            "medians (chosen before the runs: on 2 cores the same binary's wall time varies by more than the 5% "
            "asked, see the spread below, and the median is the estimate least moved by one lucky or unlucky run); "
            "the best runs' ratio and each pair's are shown too.",
            "",
            "| build | runs (s) | median (s) | best (s) | spread (max/min) |",
            "|---|---|---|---|---|",
            f"| old (`{base}`) | {', '.join(f'{t:.1f}' for t in old_t)} | {statistics.median(old_t):.1f} | "
            f"{min(old_t):.1f} | {max(old_t) / min(old_t):.2f} |",
            f"| new | {', '.join(f'{t:.1f}' for t in new_t)} | {statistics.median(new_t):.1f} | {min(new_t):.1f} | "
            f"{max(new_t) / min(new_t):.2f} |",
            "",
            f"**new / old = {median_ratio:.3f}** (medians; target: at most 1.05). Best runs: {best_ratio:.3f}. "
            f"Pairs (each new run over the old run just before it): {', '.join(f'{r:.2f}' for r in pairs)}; their "
            f"median {statistics.median(pairs):.3f}.",
            ""]
    old_nodes, _ = busy(runs / "quickstart_old.profile.json")
    new_nodes, new_profile = busy(runs / "quickstart_new.profile.json")
    out += ["## Where a step's time goes",
            "",
            "Busy seconds per node in the last quickstart run of each build (`--profile`). The old build shows "
            "one `train` node; the new one shows each stage. `train` (the loop) includes the epoch-end "
            "evaluations and checkpoints.",
            "",
            "| node | type | busy (s) | share of the step nodes |",
            "|---|---|---|---|"]
    total = sum(new_nodes[n]["busy_seconds"] for n in STEP_NODES if n in new_nodes)
    for n in STEP_NODES:
        if n in new_nodes:
            out.append(f"| {n} | {new_nodes[n]['type']} | {new_nodes[n]['busy_seconds']:.2f} | "
                       f"{100 * new_nodes[n]['busy_seconds'] / total:.1f}% |")
    out += [f"| **sum** | | **{total:.2f}** | |",
            f"| old `train` (sefar_train) | | {old_nodes['train']['busy_seconds']:.2f} | |",
            "",
            f"The step nodes' busy seconds add up to {total:.2f} s against {old_nodes['train']['busy_seconds']:.2f} s "
            "for the single node they replace (one step is in flight at a time, so their busy times do not overlap).",
            ""]
    doc.write_text("\n".join(out))
    print("\n".join(out))


main()
