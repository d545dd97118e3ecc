#!/usr/bin/env python3
"""Writes the report of bench/gpu/run.sh from its work directory (every figure from that run), or checks
a written report.

usage: report.py WORK OUT       write OUT (atomically) from WORK
       report.py --check OUT    exit 1 unless every table of OUT has rows and every cell a value
"""
import json
import os
import statistics
import sys
from pathlib import Path

# The step nodes that launch the device work, and the whole chain (with regulation, token mix and loss:
# little work of their own, but on CUDA the loss node waits for the student's kernels when it reads the
# losses, so the chain's busy time is the device-busy time).
DEVICE_NODES = ["teacher", "student", "backward", "optimizer", "ema"]
CHAIN_NODES = ["teacher", "regulation", "token_mix", "student", "loss", "backward", "optimizer", "ema"]
GIB = 1024.0**3


def read_kv(path):
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def read_status(path):
    rows = []
    for line in path.read_text().splitlines():
        name, rc, seconds = line.split("\t")
        rows.append((name, rc, float(seconds)))
    return rows


def outcome(rc):
    if rc == "0":
        return None
    if rc == "3":
        return "out of memory"
    if rc in ("124", "137"):
        return "timed out"
    if rc == "budget":
        return "not run (budget spent)"
    return f"failed (exit {rc})"


def memory_cell(m):
    if not m:
        return "-"
    if "allocated_bytes" in m:
        return f"{m['allocated_bytes'] / GIB:.1f} / {m['reserved_bytes'] / GIB:.1f}"
    return f"{m['rss_bytes'] / GIB:.2f} (RSS)"


def fmt_tflop(x):
    return f"{x:.3g}"


def step_rows(work, status):
    rows, results = [], {}
    for name, rc, seconds in status:
        if name in ("synth", "e2e"):
            continue
        model, batch, precision = name.split("_")
        path = work / "steps" / f"{name}.json"
        j = json.loads(path.read_text()) if path.exists() else {}
        why = outcome(rc)
        if why:
            extra = f", peak {memory_cell(j.get('peak_memory'))} GiB at the failure" if j.get("peak_memory") else ""
            rows.append(f"| {model} | {j.get('crop', '-')} | {batch} | {precision} | {why}{extra} "
                        f"| | | | {fmt_tflop(j['tflop_per_step']) if 'tflop_per_step' in j else '-'} | | |")
            continue
        results[(model, batch, precision)] = j
        med = j["ms_per_step"]["median"]
        each = ", ".join(f"{x:.0f}" if x >= 100 else f"{x:.1f}" for x in j["ms_per_step"]["each"])
        mfu = f"{100 * j['mfu']:.1f}% of {j['peak_tflops']:g}" if j.get("mfu") is not None else "n/a"
        rows.append(f"| {model} | {j['crop']} | {batch} | {precision} | {med:.1f} | {each} | "
                    f"{j['clips_per_second']:.2f} | {memory_cell(j['peak_memory'])} | {fmt_tflop(j['tflop_per_step'])} | "
                    f"{j['achieved_tflops']:.3g} | {mfu} |")
    return rows, results


def e2e_section(work, status, settings, results):
    e2e = [s for s in status if s[0] == "e2e"]
    synth = [s for s in status if s[0] == "synth"]
    out = []
    rc = e2e[0][1] if e2e else (synth[0][1] if synth else "missing")
    profile_path = work / "profile.json"
    if rc != "0" or not profile_path.exists():
        why = outcome(rc) if e2e else f"clip generation {outcome(rc) or 'failed'}"
        out += ["| model | result |", "|---|---|", f"| {settings['e2e_model']} | {why} |"]
        return out, False
    profile = json.loads(profile_path.read_text())
    nodes = {n["id"]: n for n in profile["nodes"]}
    wall = profile["wall_seconds"]
    steps = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in steps if r.get("kind") == "step"]
    secs = [r["seconds"] for r in steps]
    later = secs[1:] if len(secs) > 1 else secs
    step_s = statistics.median(later)
    clips = steps[0]["labeled"] + steps[0]["unlabeled"] if steps else 0
    device_busy = sum(nodes[n]["busy_seconds"] for n in DEVICE_NODES if n in nodes)
    chain_busy = sum(nodes[n]["busy_seconds"] for n in CHAIN_NODES if n in nodes)
    train = nodes["train"]
    idle = max(0.0, train["wait_input_seconds"] - chain_busy)
    batch = settings["e2e_batch"]
    bench = results.get((settings["e2e_model"], batch, settings["e2e_precision"]))
    vs = f"{step_s * 1000 / bench['ms_per_step']['median']:.2f}x" if bench else "n/a (not measured above)"
    # CPU time per clip of the decode nodes (weak and strong draws of an unlabeled clip: one decode).
    dec = [nodes[n] for n in ("decode_labeled", "decode_unlabeled") if n in nodes]
    dec_items = sum(n["items_in"] for n in dec)
    dec_ms = 1000 * sum(n["busy_seconds"] for n in dec) / dec_items if dec_items else 0.0
    out += ["| model | crop | batch | precision | steps | step time, median after the first (s) | clips/s | "
            "vs. the step on device inputs | graph wall (s) | step nodes busy (s) | device-busy share | "
            "of which teacher, student, backward, optimizer, ema | "
            "train input wait (s) | of which no step in flight (s) | clips decoded | decode CPU ms per clip |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {settings['e2e_model']} | {settings['crop']} | {batch} | {settings['e2e_precision']} | {len(steps)} | "
            f"{step_s:.3f} | {clips / step_s:.2f} | {vs} | {wall:.2f} | {chain_busy:.2f} | "
            f"{100 * chain_busy / wall:.1f}% | {100 * device_busy / wall:.1f}% | {train['wait_input_seconds']:.2f} | {idle:.2f} | {dec_items} | "
            f"{dec_ms:.1f} |",
            "",
            "Busy time of every node of the run (slots: concurrent bodies; share: busy / (graph wall x slots)):",
            "",
            "| node | type | slots | items in | busy (s) | share |",
            "|---|---|---|---|---|---|"]
    for n in profile["nodes"]:
        out.append(f"| {n['id']} | {n['type']} | {n['slots']} | {n['items_in']} | {n['busy_seconds']:.3f} | "
                   f"{100 * n['busy_fraction']:.1f}% |")
    return out, True


def write(work, out_path):
    work = Path(work)
    machine = read_kv(work / "machine.txt")
    version = json.loads((work / "version.json").read_text())
    settings = json.loads((work / "settings.json").read_text())
    status = read_status(work / "status.tsv")
    rows, results = step_rows(work, status)
    e2e, _ = e2e_section(work, status, settings, results)
    device = settings["device"]
    hw = machine.get("gpu", "") if device == "cuda" else ""
    synth_s = next((s for n, _, s in status if n == "synth"), 0.0)
    e2e_cmd = (work / "e2e_command.txt").read_text().strip() if (work / "e2e_command.txt").exists() else "-"
    lines = [
        "# Training-step performance",
        "",
        f"Written by `bash bench/gpu/run.sh` ({settings['size']} sizes on {device}); every figure below is "
        "from that run.",
        "",
        f"- Machine: {('GPU ' + hw + '; ') if hw else ''}CPU {machine.get('cpu', '?')}",
        f"- Build: sefar {version.get('sefar')} commit `{version.get('commit')}`, LibTorch {version.get('libtorch')}, "
        f"FFmpeg {version.get('ffmpeg')}, oneTBB {version.get('onetbb')}",
        f"- Command: `{machine.get('command', '?').strip()}` ({machine.get('date', '?')})",
        "",
        "## The training step on device inputs",
        "",
        f"`sefar_bench_step`: `models::Trainer::step` (teacher with K = {settings['k']} head passes, adaptive "
        "regulation, Tube TokenMix, student forward and backward, SGD, EMA) on random clips made once on the "
        f"device, views 2,2,4, {settings['warmup']} warm-up and {settings['steps']} timed steps, the device "
        "synchronised around each. clips/s: (labeled + unlabeled) / median step time. Peak memory: "
        + ("the CUDA caching allocator's peak allocated / reserved bytes over the timed steps"
           if device == "cuda" else "the process's peak resident set (VmHWM)")
        + ". TFLOP/step: the analytic count of `bench/gpu/step.cpp` (matrix products of the student's "
        "forward and backward on labeled + unlabeled + token-mixed clips, and the teacher's backbone once and "
        "head K times). MFU: achieved TFLOP/s over the dense peak of the matrix units for the precision "
        "(H100 SXM / H200: bf16 989, tf32 494, fp32 67 TFLOP/s" +
        (f"; here given as {settings['peak_tflops']} TFLOP/s" if settings["peak_tflops"] else "") + ").",
        "",
        "| model | crop | labeled+unlabeled | precision | ms/step (median) | ms/step (each) | clips/s | "
        + ("peak memory allocated / reserved (GiB)" if device == "cuda" else "peak memory (GiB)")
        + " | TFLOP/step | TFLOP/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## End to end from decoded clips",
        "",
        f"`sefar synth` made {settings['e2e_steps']} batches' worth of labeled clips and as many unlabeled "
        f"({settings['classes']} classes, {settings['clip_size']}, {settings['clip_frames']} frames; "
        f"{synth_s:.1f} s), then one epoch of `pipelines/sefar_train.json` ran on them (no evaluation), "
        f"with `--profile`:",
        "",
        f"`{e2e_cmd}`",
        "",
        *e2e,
        "",
        "Step time: the training loop's `seconds` per step record (from one step's end to the next, so the "
        "wait for batches is included); the first step (teacher creation, first kernels) is left out. "
        "Device-busy share: busy time of the step nodes (teacher, regulation, token_mix, student, loss, "
        "backward, optimizer, ema; one step in flight at a time) over the graph's wall time (start-up and the "
        "end included). On CUDA a node returns once its kernels are queued unless it reads a result: the "
        "losses (loss node) and the gradient norm (backward node) are read on the host, "
        "so the chain's busy time covers the device's work, while a single node's may include kernels of the "
        "node before it; the next column counts the five nodes that launch the device work. Train "
        "input wait: the training loop node's time without a body running (the profile's wait_input_seconds), "
        "which includes the time its step spends in the step nodes; the last column subtracts the whole step "
        "chain's busy time: the time no step was in flight, waiting for batches (and start-up). Clips decoded: "
        "the unlabeled source runs ahead of the steps up to its budget, so more clips are decoded than the "
        "steps use. Decode CPU per clip: the decode nodes' busy time per clip; `sefar synth`'s clips (a figure on a "
        "plain background) decode faster than busier content of the same size (docs/BENCH_DECODE.md), so the "
        "input wait here is a lower bound for real video.",
        "",
    ]
    tmp = Path(str(out_path) + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out_path)


def check(path):
    text = Path(path).read_text()
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        else:
            current = None
    problems = []
    if len(tables) < 3:
        problems.append(f"{len(tables)} tables, expected 3 (steps, end to end, nodes)")
    bad = {"", "-", "n/a", "none", "nan", "?"}
    for t, table in enumerate(tables):
        body = table[2:]
        if not body:
            problems.append(f"table {t + 1} has no rows")
        for row in body:
            empty = [table[0][c] for c, cell in enumerate(row)
                     if cell.lower() in bad
                     or any(w in cell.lower() for w in ("failed", "timed out", "not run", "out of memory", "n/a"))]
            if empty:
                problems.append(f"table {t + 1}, row '{' | '.join(row)}': no value in {', '.join(empty)}")
    for p in problems:
        print(f"report.py --check {path}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    write(sys.argv[1], sys.argv[2])
