"""CPU time of one SeFAR training step under several LibTorch builds, precisions, attention kernels
and allocators (bench/cpu_step/run.sh prepares the binaries and data, then calls this).

Runs every configuration REPEATS times, round-robin, each as its own `sefar run`; while a run goes it
watches RUN_DIR/metrics.jsonl and snapshots the process's CPU counters (/proc/PID/stat) at every step
record, so the user and system seconds of the timed steps (every semi-supervised step after the
first) are separated from start-up, the first step and the final checkpoint. Writes the results
(JSON) and the report (Markdown), both atomically. `--report-only` rewrites the report from the
results file. Standard library only."""
import argparse, datetime, json, os, platform, re, shutil, statistics, subprocess, sys, time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def lib_path(name):
    """Absolute path of a shared library by soname, from the linker cache (empty when absent)."""
    try:
        out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return ""
    for line in out.splitlines():
        if line.strip().startswith(name + " ") and "x86-64" in line:
            return line.split("=>")[-1].strip()
    return ""


# name, label, which build, precision, attention, environment. Numbered 1.. in this order; the first
# is the baseline every ratio refers to.
def configs():
    jemalloc = lib_path("libjemalloc.so.2")
    tcmalloc = lib_path("libtcmalloc_minimal.so.4")
    return [
        ("base", "LibTorch 1.13, fp32, explicit attention, sefar's malloc settings (baseline)", "113", "fp32", "explicit", {}),
        ("t2", "LibTorch 2.11, fp32, explicit", "211", "fp32", "explicit", {}),
        ("t2_fused", "LibTorch 2.11, fp32, fused attention", "211", "fp32", "fused", {}),
        ("t2_bf16_fused", "LibTorch 2.11, bf16, fused attention", "211", "bf16", "fused", {}),
        ("t2_bf16", "LibTorch 2.11, bf16, explicit", "211", "bf16", "explicit", {}),
        ("glibc", "1.13 baseline, glibc malloc defaults (`SEFAR_MALLOC=glibc`)", "113", "fp32", "explicit",
         {"SEFAR_MALLOC": "glibc"}),
        # sefar's own mallopt() calls run after glibc reads its MALLOC_*_ variables and would overwrite
        # them, hence SEFAR_MALLOC=glibc; the trim threshold is sefar's, so only the mmap threshold
        # differs from the baseline (glibc 2.36 honours values above 32 MiB from the environment).
        ("mmap1g", "1.13 baseline, mmap threshold 1 GiB (`SEFAR_MALLOC=glibc MALLOC_MMAP_THRESHOLD_=1073741824 "
         "MALLOC_TRIM_THRESHOLD_=268435456`)", "113", "fp32", "explicit",
         {"SEFAR_MALLOC": "glibc", "MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}),
        ("jemalloc", "1.13 baseline, jemalloc (`LD_PRELOAD=libjemalloc.so.2`)", "113", "fp32", "explicit",
         {"LD_PRELOAD": jemalloc}),
        ("tcmalloc", "1.13 baseline, tcmalloc (`LD_PRELOAD=libtcmalloc_minimal.so.4`)", "113", "fp32", "explicit",
         {"LD_PRELOAD": tcmalloc}),
        # Debian's LibTorch 1.13 multiplies matrices with OpenBLAS's own worker threads, which wait by
        # spinning on sched_yield: this run shows how much of the 1.13 system time is theirs.
        ("openblas1", "1.13 baseline, OpenBLAS on one thread (`OPENBLAS_NUM_THREADS=1`)", "113", "fp32", "explicit",
         {"OPENBLAS_NUM_THREADS": "1"}),
    ]


# Variables that would change what a configuration measures if inherited from the caller.
SCRUB = ("SEFAR_MALLOC", "LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
         "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def cpu_busy():
    """Busy seconds of all cores together since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / TICK  # minus idle and iowait


def proc_counters(pid):
    """(user s, sys s, minor faults, major faults) of a process and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[11]) / TICK, int(fields[12]) / TICK, int(fields[7]), int(fields[9])


def busy_compilers():
    names = []
    for prog in ("cc1plus", "cc1", "lto1", "ld", "ld.bfd", "ld.gold", "ninja", "make"):
        if subprocess.run(["pgrep", "-x", prog], stdout=subprocess.DEVNULL).returncode == 0:
            names.append(prog)
    return names


def wait_quiet(max_wait, threshold):
    """Waits while compilers or linkers run or the other processes keep more than `threshold` cores
    busy (over 2 s), at most max_wait s; returns (seconds waited, busy cores seen last)."""
    t0 = time.time()
    said = 0.0
    while True:
        b0 = cpu_busy()
        time.sleep(2.0)
        busy = (cpu_busy() - b0) / 2.0
        comp = busy_compilers()
        waited = time.time() - t0
        if (not comp and busy < threshold) or waited >= max_wait:
            if waited >= max_wait and (comp or busy >= threshold):
                print(f"cpu_step: machine still busy after {waited:.0f} s ({busy:.2f} cores, {' '.join(comp) or '-'}); "
                      "measuring anyway (recorded)", flush=True)
            return waited, busy
        if waited - said >= 30 or said == 0.0:
            print(f"cpu_step: waiting for a quiet machine: {busy:.2f} cores busy"
                  f"{', running: ' + ' '.join(comp) if comp else ''} ({waited:.0f} s so far)", flush=True)
            said = waited or 1e-9


def read_steps(path):
    steps = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    j = json.loads(line)
                    if j.get("kind") == "step":
                        steps.append(j)
    except FileNotFoundError:
        pass
    return steps


def run_one(args, cfg, rep, run_dir):
    name, _, build, precision, attention, env_add = cfg
    binary = args.sefar113 if build == "113" else args.sefar211
    cmd = [binary, "run", args.pipeline, "--overwrite", "--quiet"] + [x for s in args.set for x in ("--set", s)] + [
        "--set", f"runtime.run_dir={run_dir}", "--set", f"models.net.precision={precision}",
        "--set", f"models.net.attention={attention}"]
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(env_add)
    if "LD_PRELOAD" in env_add and not env_add["LD_PRELOAD"]:
        raise SystemExit(f"cpu_step: {name}: allocator library not found (bench/cpu_step/run.sh installs it)")
    os.makedirs(run_dir, exist_ok=True)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    log = open(os.path.join(os.path.dirname(run_dir), os.path.basename(run_dir) + ".log"), "w")
    t0 = time.perf_counter()
    busy0 = cpu_busy()
    p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    marks = []  # per step record: (wall, busy, user, sys, minflt, majflt)
    mapped = None
    seen = 0
    status = None
    while status is None:
        time.sleep(0.05)
        try:
            n = len(read_steps(metrics))
            if n > seen:
                c = proc_counters(p.pid)
                marks.append((time.perf_counter() - t0, cpu_busy() - busy0) + c)
                marks.extend([marks[-1]] * (n - seen - 1))  # records that arrived within one poll
                seen = n
            if mapped is None and n >= 1:
                with open(f"/proc/{p.pid}/maps") as f:
                    maps = f.read()
                # proof that LD_PRELOAD took effect
                mapped = [lib for lib in ("libjemalloc.so", "libtcmalloc_minimal.so") if lib in maps]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass  # the process is ending, or a record is half written
        pid, st, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            status = os.waitstatus_to_exitcode(st)
    wall = time.perf_counter() - t0
    log.close()
    steps = read_steps(metrics)
    if status != 0 or not steps:
        raise SystemExit(f"cpu_step: {name} repeat {rep} failed (exit {status}); see {run_dir}.log")
    # The run's output beyond the metrics (checkpoints, model: hundreds of MB per run) is not needed.
    for x in ("checkpoints", "model.safetensors", "tb"):
        path = os.path.join(run_dir, x)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else (os.path.exists(path) and os.remove(path))
    semi = [i for i, s in enumerate(steps) if s.get("semi")]
    timed = semi[1:]
    out = {
        "config": name, "repeat": rep, "exit": status, "wall": wall,
        "user": ru.ru_utime, "sys": ru.ru_stime, "minflt": ru.ru_minflt, "majflt": ru.ru_majflt,
        "maxrss_mb": ru.ru_maxrss / 1024, "mapped": mapped or [],
        "steps": [{k: s.get(k) for k in ("step", "semi", "seconds", "loss", "loss_sup", "loss_un", "loss_mix",
                                         "grad_norm", "pseudo_accuracy")} for s in steps],
        "step_seconds": [steps[i]["seconds"] for i in timed],
    }
    if timed and len(marks) == len(steps):
        a, b = marks[timed[0] - 1], marks[timed[-1]]
        n = len(timed)
        ours = (b[2] - a[2]) + (b[3] - a[3])
        out.update({
            "window_wall": b[0] - a[0],
            "user_per_step": (b[2] - a[2]) / n, "sys_per_step": (b[3] - a[3]) / n,
            "minflt_per_step": (b[4] - a[4]) / n,
            # what the rest of the machine used while the timed steps ran, in cores
            "others_cores": max(0.0, (b[1] - a[1]) - ours) / max(b[0] - a[0], 1e-9),
        })
    return out


def version(binary):
    try:
        p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
        lines = p.stdout.splitlines()
        info = json.loads("\n".join(lines[1:]))
        return {"line": lines[0], "libtorch": info.get("libtorch", "?"), "commit": info.get("commit", "?")}
    except Exception as e:  # reported, not fatal: the report says what it could not read
        return {"line": f"unknown ({e})", "libtorch": "?", "commit": "?"}


def machine():
    model, flags = "?", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    glibc = platform.libc_ver()[1] or "?"
    return {"cpu": model, "cores": os.cpu_count(), "flags": {w: w in flags for w in wanted},
            "kernel": platform.release(), "glibc": glibc,
            "hypervisor": "hypervisor" in flags}


# ---------------------------------------------------------------------------------------------------
# Report.

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarise(results, names):
    rows = {}
    for name in names:
        runs = [r for r in results["runs"] if r["config"] == name]
        if not runs:
            continue
        pooled = [s for r in runs for s in r["step_seconds"]]
        per_run = [med(r["step_seconds"]) for r in runs]
        m = med(pooled)
        rows[name] = {
            "runs": runs, "median": m, "per_run": per_run,
            # relative spread of the runs' medians: differences smaller than this are noise
            "spread": (max(per_run) - min(per_run)) / m if m == m and m > 0 else float("nan"),
            "user": med([r["user_per_step"] for r in runs if "user_per_step" in r]),
            "sys": med([r["sys_per_step"] for r in runs if "sys_per_step" in r]),
            "minflt": med([r["minflt_per_step"] for r in runs if "minflt_per_step" in r]),
            "rss": med([r["maxrss_mb"] for r in runs]),
            "others": max([r.get("others_cores", 0.0) for r in runs]),
        }
    return rows


def paired(rows, a, b):
    """Per round (repeat), a's median step over b's: the two ran minutes apart, so drift between rounds
    cancels. Returns the list (rounds where both ran)."""
    if a not in rows or b not in rows:
        return []
    ma = {r["repeat"]: med(r["step_seconds"]) for r in rows[a]["runs"]}
    mb = {r["repeat"]: med(r["step_seconds"]) for r in rows[b]["runs"]}
    return [ma[k] / mb[k] for k in sorted(ma) if k in mb]


def compare_steps(results, a, b, rep=1):
    """Largest relative differences of the per-step losses and gradient norms between two runs of the
    same steps (same seed, same clips), and step 0's loss difference."""
    ra = next((r for r in results["runs"] if r["config"] == a and r["repeat"] == rep), None)
    rb = next((r for r in results["runs"] if r["config"] == b and r["repeat"] == rep), None)
    if not ra or not rb:
        return None
    def rel(x, y):
        return abs(x - y) / max(abs(x), 1e-12) if x is not None and y is not None else None

    out = {"sup0": None, "sup_max": 0.0, "loss_max": 0.0, "grad_max": 0.0, "pseudo_same": True}
    for sa, sb in zip(ra["steps"], rb["steps"]):
        d = rel(sa.get("loss_sup"), sb.get("loss_sup"))
        if d is None:
            continue
        if out["sup0"] is None:
            out["sup0"] = d
        out["sup_max"] = max(out["sup_max"], d)
        out["loss_max"] = max(out["loss_max"], rel(sa.get("loss"), sb.get("loss")) or 0.0)
        out["grad_max"] = max(out["grad_max"], rel(sa.get("grad_norm"), sb.get("grad_norm")) or 0.0)
        out["pseudo_same"] &= sa.get("pseudo_accuracy") == sb.get("pseudo_accuracy")
    return out


def pct(x):
    return f"{100 * x:.1f}%"


def pct3(x):
    return f"{100 * x:.3f}%"


def report(results, doc):
    cfgs = {c[0]: c for c in configs()}
    names = [n for n in results["order"]]
    rows = summarise(results, names)
    base = rows.get("base")
    ref = base["median"] if base else float("nan")
    m = results["machine"]
    L = ["# CPU time of one SeFAR training step", ""]
    L.append(f"Generated by `{results['command']}` on {results['date']} ({int(results['elapsed']) // 60} min "
             f"{int(results['elapsed']) % 60} s in all, {sum(r.get('quiet_wait', 0) for r in results['runs']) / 60:.0f} min of it "
             "waiting for a quiet machine). Every figure below comes from that run "
             "(`bench/cpu_step/bench.py` writes this file from `data/generated/cpu_step/"
             f"{results['size']}/results.json`); nothing is edited by hand.")
    L.append("")
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    L.append(f"- Machine: {m['cpu']}, {m['cores']} cores{' (virtual machine)' if m['hypervisor'] else ''}; "
             f"{flags}; Linux {m['kernel']}, glibc {m['glibc']}.")
    L.append(f"- Source: commit `{results['commit']}`; `{results['bin113']}`: {results['v113']['line']} "
             f"(LibTorch {results['v113']['libtorch']}); `{results['bin211']}`: {results['v211']['line']} "
             f"(LibTorch {results['v211']['libtorch']}).")
    L.append(f"- Step: {results['step_desc']}.")
    L.append(f"- Each run: {results['steps_per_run']} steps, all semi-supervised; the first is warm-up (it "
             "makes the teacher and waits for the first batches) and is not counted. Each configuration ran "
             f"{results['repeats']} time{'s' if results['repeats'] != 1 else ''}, the configurations round-robin "
             "(a round forward, the next backward), each run after a wait for a quiet "
             "machine (no compiler or linker running, other processes below "
             f"{results['quiet_threshold']} cores); a run during which other processes took more than "
             f"{results.get('retry_threshold', '?')} cores was run again (listed below).")
    L.append("- s/step: the median of the counted steps' `seconds` in `metrics.jsonl` (wall time from one step's "
             "end to the next's), all repeats pooled. Ratio: s/step over the baseline's (below 1.00: faster). Paired "
             "ratio: in each round, the configuration's median step over the baseline's in the same round (runs "
             "minutes apart, so a drift of the machine's speed between rounds cancels); the median over rounds, "
             "and the lowest and highest round. "
             "user, sys: the process's CPU seconds (all threads, from `/proc/PID/stat`) between the end of "
             "the warm-up step and the end of the last step, per counted step, median over repeats; sys share "
             "= sys / (user + sys). Minor faults: per counted step (a fault maps a fresh zeroed page: the "
             "kernel's share of memory churn). Peak RSS: the whole process's (`ru_maxrss`).")
    L.append("")
    L.append("| # | configuration | median s/step | ratio to baseline | paired ratio (per round: lowest–highest) | user s/step | sys s/step | sys share | minor faults/step | peak RSS MB |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for i, name in enumerate(names, 1):
        if name not in rows:
            continue
        r = rows[name]
        pr = paired(rows, name, "base")
        prs = f"{med(pr):.2f} ({min(pr):.2f}–{max(pr):.2f})" if pr and name != "base" else ("1.00" if pr else "")
        L.append(f"| {i} | {cfgs[name][1]} | {r['median']:.2f} | {r['median'] / ref:.2f} | {prs} | {r['user']:.2f} | "
                 f"{r['sys']:.2f} | {pct(r['sys'] / (r['user'] + r['sys']))} | {r['minflt']:,.0f} | {r['rss']:,.0f} |")
    L.append("")
    L.append("## Every repeat")
    L.append("")
    L.append("Per run: the counted steps' seconds; user + sys CPU s per counted step; whole process: wall s, "
             "user s, sys s (start-up, warm-up step and final checkpoint included); cores other processes used "
             "during the counted steps; for the LD_PRELOAD runs, the allocator library found mapped in the process.")
    L.append("")
    for i, name in enumerate(names, 1):
        if name not in rows:
            continue
        L.append(f"- {i}. {name} (spread of the runs' medians {pct(rows[name]['spread'])}):")
        for r in rows[name]["runs"]:
            secs = ", ".join(f"{s:.2f}" for s in r["step_seconds"])
            L.append(f"  - repeat {r['repeat']}: steps [{secs}] s; per step {r.get('user_per_step', float('nan')):.2f} "
                     f"user + {r.get('sys_per_step', float('nan')):.2f} sys; process {r['wall']:.1f} s wall, "
                     f"{r['user']:.1f} user, {r['sys']:.1f} sys, {r['minflt']:,} minor faults; others "
                     f"{r.get('others_cores', float('nan')):.2f} cores; {', '.join(r['mapped']) or '-'}")
    dropped = results.get("dropped", [])
    if dropped:
        L.append("")
        L.append(f"Runs dropped and run again because other processes took more than {results['retry_threshold']} "
                 "cores during their counted steps:")
        L.append("")
        for r in dropped:
            secs = ", ".join(f"{s:.2f}" for s in r["step_seconds"])
            L.append(f"- {r['config']} repeat {r['repeat']}: steps [{secs}] s; others {r.get('others_cores', float('nan')):.2f} cores")
    L.append("")

    # Numerical effect, from the losses the runs logged (same seed, same clips, same order).
    pairs = [("t2", "t2_bf16", "fp32 → bf16, explicit attention (2.11)"),
             ("t2_fused", "t2_bf16_fused", "fp32 → bf16, fused attention (2.11)"),
             ("t2", "t2_fused", "explicit → fused attention, fp32 (2.11)"),
             ("base", "t2", "LibTorch 1.13 → 2.11, fp32, explicit")]
    if results["repeats"] >= 2:
        pairs.append(("base", "base", "the baseline's repeat 1 → repeat 2 (run-to-run determinism)"))
    cmp_lines = []
    for a, b, what in pairs:
        c = compare_steps(results, a, b) if a != b else None
        if a == b:
            ra = next((r for r in results["runs"] if r["config"] == a and r["repeat"] == 1), None)
            rb = next((r for r in results["runs"] if r["config"] == a and r["repeat"] == 2), None)
            if ra and rb:
                r2 = dict(results, runs=[ra, dict(rb, config="__b", repeat=1)])
                c = compare_steps(r2, a, "__b")
        if c and c["sup0"] is not None:
            cmp_lines.append(f"| {what} | {pct3(c['sup0'])} | {pct3(c['sup_max'])} | {pct3(c['loss_max'])} | {pct3(c['grad_max'])} | "
                             f"{'yes' if c['pseudo_same'] else 'no'} |")
    if cmp_lines:
        L.append("## Numerical effect")
        L.append("")
        L.append(f"The same {results['steps_per_run']} steps (seed, clips and order are the same in every run) "
                 "compared step by step, repeat 1 of each configuration: relative difference of the supervised "
                 "loss (the student's cross-entropy on the labeled clips) at the first step (same weights, so "
                 "only the arithmetic differs) and the largest over all steps (the weights drift apart after "
                 "the first update), the largest relative differences of the total loss and of the gradient "
                 "norm, and whether the teacher's pseudo-label accuracy on the batch is the same at every step. "
                 "This is the cheap check; accuracy after training needs `bench/ssl` with "
                 "`SET=\"--set models.net.precision=bf16\"`.")
        L.append("")
        L.append("| change | supervised loss, first step | supervised loss, largest | total loss, largest | gradient norm, largest | same pseudo-label accuracy |")
        L.append("|---|---|---|---|---|---|")
        L.extend(cmp_lines)
        L.append("")

    L.append("## What it shows")
    L.append("")
    L.extend(findings(rows, m))
    L.append("")
    atomic_write(doc, "\n".join(L) + "\n")


def findings(rows, m):
    """Sentences drawn from the numbers. A difference counts when every round agrees on its direction
    (the paired ratios of all rounds on the same side of 1); otherwise it is called no clear difference."""
    out = []
    have = lambda *ns: all(n in rows for n in ns)

    def share(n):
        return rows[n]["sys"] / (rows[n]["user"] + rows[n]["sys"])

    def verdict(a, b):
        """How a compares with b, from the paired ratios."""
        pr = paired(rows, a, b)
        if not pr:
            return "not comparable (no common round)"
        span = f"{med(pr):.2f}x the time, rounds {min(pr):.2f}–{max(pr):.2f}" if len(pr) > 1 else f"{pr[0]:.2f}x the time"
        if len(pr) > 1 and min(pr) < 1 < max(pr):
            return f"no clear difference ({span})"
        if len(pr) == 1:
            return f"{'faster' if pr[0] < 1 else 'slower'} in its one round ({span})"
        return f"{'faster' if max(pr) < 1 else 'slower'} in every round ({span})"

    if have("base"):
        best = min(rows, key=lambda n: rows[n]["median"])
        out.append(f"- Fastest configuration: {best} at {rows[best]['median']:.2f} s/step against the baseline's "
                   f"{rows['base']['median']:.2f} s: {verdict(best, 'base')}.")
    if have("base", "t2"):
        out.append(f"- LibTorch 2.11 against 1.13, same fp32 model and explicit attention: {verdict('t2', 'base')}; "
                   f"system time {rows['base']['sys']:.2f} → {rows['t2']['sys']:.2f} s per step "
                   f"(sys share {pct(share('base'))} → {pct(share('t2'))}).")
    if have("base", "openblas1"):
        drop = rows["openblas1"]["sys"] < 0.5 * rows["base"]["sys"]
        pr = paired(rows, "openblas1", "base")
        out.append(f"- Where the 1.13 system time goes: with OpenBLAS on one thread it is {rows['openblas1']['sys']:.2f} "
                   f"instead of {rows['base']['sys']:.2f} s per step (sys share {pct(share('openblas1'))} instead of "
                   f"{pct(share('base'))}), and the step is {verdict('openblas1', 'base')}. " +
                   ("Most of the kernel time is OpenBLAS's worker threads waiting for work (they spin on sched_yield), "
                    "not memory" if drop else "OpenBLAS's worker threads account for less than half of it") +
                   ("; those threads also do a real share of the matrix products, so turning them off costs more than "
                    "it saves." if pr and min(pr) > 1 else "."))
    if have("t2", "t2_fused"):
        out.append(f"- Fused attention (at::scaled_dot_product_attention) against explicit, fp32: {verdict('t2_fused', 't2')}.")
    if have("t2_bf16", "t2_bf16_fused"):
        out.append(f"- Fused against explicit attention under bf16: {verdict('t2_bf16_fused', 't2_bf16')}.")
    bf = m["flags"].get("avx512_bf16")
    if have("t2", "t2_bf16"):
        pr = paired(rows, "t2_bf16", "t2")
        helps = bool(pr) and max(pr) < 1
        out.append(f"- bf16 autocast against fp32, explicit attention: {verdict('t2_bf16', 't2')}; this CPU "
                   f"{'has' if bf else 'lacks'} avx512_bf16, and bf16 {'pays off' if helps else 'does not pay off'} "
                   "here for this model size and batch.")
    if have("t2_fused", "t2_bf16_fused"):
        out.append(f"- bf16 against fp32, fused attention: {verdict('t2_bf16_fused', 't2_fused')}.")
    allocs = [n for n in ("base", "glibc", "mmap1g", "jemalloc", "tcmalloc") if n in rows]
    if len(allocs) > 1:
        def key(n):
            return med(paired(rows, n, "base")) if n != "base" else 1.0
        ranked = sorted(allocs, key=key)
        desc = ", ".join(f"{n} {key(n):.2f} (sys {rows[n]['sys']:.2f} s, {rows[n]['minflt']:,.0f} faults/step, "
                         f"{rows[n]['rss']:,.0f} MB peak)" for n in ranked)
        out.append(f"- Allocators on the 1.13 baseline by paired ratio, fastest first: {desc}.")
        for n in ranked:
            if n != "base":
                out.append(f"  - {n} against sefar's current settings: {verdict(n, 'base')}.")
    busy = max((r["others"] for r in rows.values()), default=0.0)
    out.append(f"- Other processes used at most {busy:.2f} cores during any counted run's steps.")
    return out


# ---------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sefar113", default="build/sefar")
    ap.add_argument("--sefar211", default="build-torch2/sefar")
    ap.add_argument("--pipeline", default="pipelines/synthetic/sefar.json")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
    ap.add_argument("--configs", default="", help="names or numbers, comma or space separated (default: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, required=True, help="steps per run (for the report)")
    ap.add_argument("--size", default="full")
    ap.add_argument("--step-desc", default="")
    ap.add_argument("--out", required=True, help="folder for the runs and results.json")
    ap.add_argument("--doc", required=True)
    ap.add_argument("--command", default="bash bench/cpu_step/run.sh")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--quiet-wait", type=float, default=1800, help="longest wait for a quiet machine, per run (s)")
    ap.add_argument("--quiet-threshold", type=float, default=0.3, help="cores other processes may use")
    ap.add_argument("--retry-threshold", type=float, default=0.25,
                    help="cores other processes may take during the counted steps before the run is repeated")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    results_path = os.path.join(args.out, "results.json")
    if args.report_only:
        with open(results_path) as f:
            report(json.load(f), args.doc)
        print(f"report: {args.doc}")
        return

    all_cfgs = configs()
    by_key = {c[0]: c for c in all_cfgs} | {str(i): c for i, c in enumerate(all_cfgs, 1)}
    keys = [k for k in re.split(r"[,\s]+", args.configs) if k]
    chosen = [by_key[k] for k in keys] if keys else all_cfgs
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise SystemExit(f"cpu_step: unknown configuration(s) {unknown}; known: {[c[0] for c in all_cfgs]}")
    order = [c[0] for c in all_cfgs if c in chosen]  # report in the canonical order
    results = {
        "size": args.size, "command": args.command, "commit": args.commit,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "bin113": args.sefar113, "bin211": args.sefar211,
        "v113": version(args.sefar113), "v211": version(args.sefar211),
        "steps_per_run": args.steps, "repeats": args.repeats, "step_desc": args.step_desc,
        "quiet_threshold": args.quiet_threshold, "retry_threshold": args.retry_threshold, "order": order,
        "sets": args.set, "runs": [], "dropped": [], "elapsed": 0,
    }
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    t0 = time.time()
    total = args.repeats * len(chosen)
    k = 0
    for rep in range(1, args.repeats + 1):
        # Forward in odd rounds, backward in even ones: a slow drift of the machine's speed within a
        # round then weighs on every configuration alike over a pair of rounds.
        for cfg in (chosen if rep % 2 else chosen[::-1]):
            k += 1
            # The machine is shared: a run during which other processes took more than
            # --retry-threshold cores is run again (up to --retries times); the dropped runs are kept
            # in the results and listed in the report.
            for attempt in range(args.retries + 1):
                waited, busy = wait_quiet(args.quiet_wait, args.quiet_threshold)
                print(f"cpu_step: run {k}/{total}: {cfg[0]} repeat {rep}"
                      f"{f' (try {attempt + 1})' if attempt else ''}", flush=True)
                r = run_one(args, cfg, rep, os.path.join(args.out, "runs", f"{cfg[0]}_r{rep}"))
                r["quiet_wait"] = waited
                secs = ", ".join(f"{s:.2f}" for s in r["step_seconds"])
                print(f"cpu_step:   steps [{secs}] s; per step {r.get('user_per_step', 0):.2f} user "
                      f"{r.get('sys_per_step', 0):.2f} sys; others {r.get('others_cores', 0):.2f} cores; "
                      f"{r['wall']:.0f} s", flush=True)
                if r.get("others_cores", 0.0) <= args.retry_threshold or attempt == args.retries:
                    break
                print(f"cpu_step:   other processes took {r['others_cores']:.2f} cores: run again", flush=True)
                results["dropped"].append(r)
            results["runs"].append(r)
            results["elapsed"] = time.time() - t0
            atomic_write(results_path, json.dumps(results, indent=1))
    report(results, args.doc)
    print(f"report: {args.doc}")


if __name__ == "__main__":
    main()
