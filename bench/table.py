#!/usr/bin/env python3
"""Turns engine_bench JSON outputs (Google Benchmark, with repetitions) into a markdown report.

usage: table.py FACTS_FILE LABEL=RESULT.json [LABEL=RESULT.json ...] > engine.md

Each benchmark is named <case>/<backend>/<size>[/iterations:N/real_time]; the `median` aggregate
of real time (ns/op) is used. Standard library only.
"""
import json
import sys

CORE = [("overwrite_fsync", 4096), ("append_fsync", 4096), ("append_reuse_fsync", 4096), ("subblock_fsync", 128),
        ("read", 4096)]
CASE_TITLE = {
    "overwrite_fsync": "overwrite + fsync",
    "append_fsync": "append + fsync",
    "append_reuse_fsync": "append into reused space + fsync",
    "subblock_fsync": "sub-block overwrite + fsync",
    "read": "read",
}
TARGET_SPEEDUP = {"overwrite_fsync": 4.0, "append_fsync": 4.0, "append_reuse_fsync": 4.0, "read": 4.0}
TARGET_RAW = 1.5


def load(path):
    with open(path) as f:
        data = json.load(f)
    med = {}  # (case, backend, size) -> ns
    cv = {}
    extra = {}  # (case, backend, size) -> counters of the median row
    errors = {}
    for b in data.get("benchmarks", []):
        parts = b.get("run_name", b["name"]).split("/")
        if len(parts) < 3:
            continue
        key = (parts[0], parts[1], int(parts[2]))
        if b.get("error_occurred"):
            errors[key] = b.get("error_message", "error")
            continue
        agg = b.get("aggregate_name")
        if agg is None:  # no repetitions: single run
            agg = "median"
        t = b["real_time"]
        unit = b.get("time_unit", "ns")
        t *= {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]
        if agg == "median":
            med[key] = t
            extra[key] = {k: v for k, v in b.items()
                          if k in ("pmd_MiB", "commits", "recopies", "read_retries", "backing_MiB")}
        elif agg == "cv":
            cv[key] = b["real_time"]  # cv is reported as a fraction in real_time
    return data.get("context", {}), med, cv, extra, errors


def fmt_ns(v):
    if v is None:
        return "—"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def core_table(label, med, cv, extra, errors):
    out = []
    out.append(f"| case | kernel ns | tern ns | raw ns | raw+commit ns | kernel/tern | tern/raw | tern/(raw+commit) | targets |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for case, size in CORE:
        k = med.get((case, "kernel", size))
        t = med.get((case, "tern", size))
        r = med.get((case, "raw", size))
        rc = med.get((case, "rawcow", size))
        rl = med.get((case, "rawlog", size))
        verdict = []
        if t is None:
            err = errors.get((case, "tern", size))
            verdict.append("tern: " + (err if err else "not run"))
        else:
            want = TARGET_SPEEDUP.get(case)
            if want and k:
                verdict.append(("✅" if k / t >= want else "❌") + f" ≥{want:g}× kernel")
            if r:
                verdict.append(("✅" if t / r <= TARGET_RAW else "❌") + f" ≤{TARGET_RAW:g}× raw")
        raw_cell = fmt_ns(r)
        ratio_raw = fmt_ratio(t, r)
        if rc is not None:
            raw_cell += f" (CoW of the block: {fmt_ns(rc)})"
            ratio_raw += f" ({fmt_ratio(t, rc)} vs CoW)"
        name = f"{CASE_TITLE[case]} {size} B"
        out.append(f"| {name} | {fmt_ns(k)} | {fmt_ns(t)} | {raw_cell} | {fmt_ns(rl)} | {fmt_ratio(k, t)} | {ratio_raw} | "
                   f"{fmt_ratio(t, rl)} | "
                   + "; ".join(verdict) + " |")
    return out


def matrix_table(med, cv, extra):
    out = []
    out.append("| case | size | kernel ns | tern ns | raw ns | raw+commit ns | kernel/tern | tern/raw | tern/(raw+commit) | tern cv | tern counters |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    cases = ["overwrite_fsync", "append_fsync", "append_reuse_fsync", "subblock_fsync", "read"]
    sizes = sorted({key[2] for key in med})
    for case in cases:
        for size in sizes:
            ks = [(case, b, size) for b in ("kernel", "tern", "raw", "rawcow", "rawlog")]
            if not any(k in med for k in ks):
                continue
            k, t, r, rc, rl = (med.get(x) for x in ks)
            raw_cell = fmt_ns(r) + (f" / cow {fmt_ns(rc)}" if rc is not None else "")
            c = cv.get(ks[1])
            cv_cell = f"{100 * c:.1f}%" if c is not None else "—"
            ex = extra.get(ks[1], {})
            counters = ", ".join(f"{n}={ex[n]:.3g}" for n in ("commits", "recopies", "read_retries", "backing_MiB")
                                 if n in ex)
            out.append(f"| {CASE_TITLE[case]} | {size} | {fmt_ns(k)} | {fmt_ns(t)} | {raw_cell} | {fmt_ns(rl)} | "
                       f"{fmt_ratio(k, t)} | {fmt_ratio(t, r)} | {fmt_ratio(t, rl)} | {cv_cell} | {counters or '—'} |")
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        facts = f.read().rstrip("\n")
    runs = []
    for arg in sys.argv[2:]:
        label, path = arg.rsplit("=", 1)
        runs.append((label,) + load(path))
    out = ["# engine_bench results", "", "Generated by `bench/run.sh` (see `bench/README.md`). Times are the median "
           "of the repetitions, wall-clock ns per operation (a write includes its fsync). "
           "Ratios: kernel/tern = speed-up of tern over the kernel (higher is better); "
           "tern/raw = tern's cost over the raw persistence limit (lower is better, target ≤ 1.5×).", "",
           "## Machine", "", facts, ""]
    for label, ctx, med, cv, extra, errors in runs:
        out.append(f"## {label}")
        out.append("")
        out.append(f"Directory `{ctx.get('tern_bench_dir', '?')}` on `{ctx.get('tern_bench_fs', '?')}`; "
                   f"prefilled file {ctx.get('tern_bench_file_mib', '?')} MiB; "
                   f"load average at start {ctx.get('load_avg', '?')}.")
        pmd = {b: extra.get(("read", b, 4096), {}).get("pmd_MiB") for b in ("tern", "raw")}
        pmd_txt = {b: ("—" if v is None else f"{v:.0f}") for b, v in pmd.items()}
        out.append(f"Huge-page (PMD) mapped MiB in the process during read/4096: tern {pmd_txt['tern']}, "
                   f"raw {pmd_txt['raw']}.")
        out.append("")
        out.append("### Core cases (issue 2 targets)")
        out.append("")
        out.extend(core_table(label, med, cv, extra, errors))
        out.append("")
        if len({k[2] for k in med}) > 2:
            out.append("### Full matrix")
            out.append("")
            out.extend(matrix_table(med, cv, extra))
            out.append("")
        if errors:
            out.append("### Errors")
            out.append("")
            for (case, b, size), msg in sorted(errors.items()):
                out.append(f"- `{case}/{b}/{size}`: {msg}")
            out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
