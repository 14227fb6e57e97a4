"""Fits the alpha-beta(-gamma) cost model of the collectives Open MPI 4.1 uses for vae-dist's
gradient reductions to the timings Launch/scaling.sh measured, checks it against the measured
training steps, and projects samples/s and scaling efficiency of the default model to more ranks.

  python3 Launch/scaling_model.py OUT      reads OUT/collectives.jsonl, steps.jsonl, compute.jsonl;
                                           writes OUT/tables.md (and prints it)
  python3 Launch/scaling_model.py          the 2026-12-06 refit (no measurements needed): the
                                           model of every strategy vae-dist has now (binomial,
                                           ring, Rabenseifner, hierarchical, 16-bit compression,
                                           overlapped or not) projected to 4096 ranks at 1, 10 and
                                           25 Gbit/s, per-rank batch 256 (`project` below)

Cost model (p ranks, n bytes; alpha: latency per message, beta: seconds per byte on the link,
gamma: seconds per byte of the local float sum) of the algorithm Open MPI picks:
  - MPI_Allreduce (coll/tuned, coll_tuned_decision_fixed.c of Open MPI 4.1.4, commutative op):
    for 2 ranks recursive doubling below 4 KB, ring or segmented ring up to 256 KB, then
    Rabenseifner (reduce-scatter by recursive halving + allgather by recursive doubling);
    for 4-7 ranks recursive doubling below 8 KB, then Rabenseifner; Rabenseifner for every larger
    communicator at the gradient's 2.6 MB.
      recursive doubling  log2(p) (alpha + n beta + n gamma)
      ring                2(p-1) alpha + 2(p-1)/p n beta + (p-1)/p n gamma
      Rabenseifner        2 log2(p) alpha + 2(p-1)/p n beta + (p-1)/p n gamma
  - MPI_Iallreduce in place (coll/libnbc, nbc_iallreduce.c): in-place requests always take the
    binomial tree (reduce to rank 0, then broadcast), whole buffer each round:
      2 ceil(log2 p) (alpha + n beta) + ceil(log2 p) n gamma
  - MPI_Reduce_scatter + MPI_Allgatherv (coll/tuned): ring, recursive halving or butterfly, then
    ring, neighbour exchange, Bruck or two-process exchange:
      (L_rs + L_ag) alpha + 2(p-1)/p n beta + (p-1)/p n gamma   (L: the algorithm's rounds)
gamma is measured here (numpy's float32 add, in place); alpha and beta are fitted per
collective and per link by least squares on the relative error.
"""
import json
import math
import os
import sys
import time

import numpy as np

GRADIENT_FLOATS = 652824            # 784-400-20: every parameter of the default model
BUCKETS = (322784, 330040)          # --bucket-mb 1: decoder layers (reduced first), encoder layers
FLOPS_PER_EXAMPLE = 3.28e6
# Only runs with at most one rank per core are fitted: 4 ranks (plus their daemons and TCP
# progress threads) on 2 cores measure the scheduler. They are shown, not fitted.
CORES = int(os.environ.get("SCALING_CORES", os.cpu_count() or 1))
# Backward after the decoder bucket is started: the latent heads' gradients (weights and input,
# 2 x 2 x 400 x 40) and the first encoder layer's weight gradient (2 x 784 x 400): the window in
# which the first bucket's reduction can hide, as a share of the step's FLOPs.
HIDDEN_SHARE = (2 * 2 * 400 * 40 + 2 * 784 * 400) / FLOPS_PER_EXAMPLE
# The overlapped default with its progress thread (ReductionProgress.swift), measured 2026-12-06
# (docs/performance.md, "Across nodes"): its exposed communication per step over that of one
# allreduce after backward (`--bucket-mb 0`), both Rabenseifner, 1 Gbit/s links, one rank per
# host, medians of 9 epochs: 24.09 / 27.39 ms on 2 hosts, 45.18 / 49.82 ms on 4 hosts.
OVERLAP_EXPOSED = (24.09 / 27.39 + 45.18 / 49.82) / 2


def log2(p):
    return math.log2(p)


def clog2(p):
    return math.ceil(math.log2(p))


# --- Open MPI 4.1.4's choices (commutative sum) ---------------------------------------------

def allreduce_algorithm(p, n):
    """coll/tuned's fixed decision for MPI_Allreduce: 'rd', 'ring', 'segring', 'rab', 'nonoverlap'."""
    if p < 4:
        if n < 8: return "ring"
        if n < 4096: return "rd"
        if n < 8192: return "ring"
        if n < 16384: return "rd"
        if n < 65536: return "ring"
        if n < 262144: return "segring"
        return "rab"
    if p < 8: return "rd" if 16 <= n < 8192 else ("ring" if n < 16 else "rab")
    if p < 16: return "rd" if n < 8192 else "rab"
    if p < 32: return "rd" if n < 4096 else "rab"
    if p < 64: return "rab"
    if p < 128: return "rd" if n < 262144 else "rab"
    if p < 256: return "nonoverlap" if n < 131072 else ("rd" if n < 262144 else "rab")
    if p < 512: return "nonoverlap" if n < 4096 else "rab"
    if p < 2048: return "nonoverlap" if n < 2048 else ("rd" if n < 16384 else "rab")
    return "rab" if n >= 32768 else "rd"


def reduce_scatter_rounds(p, n):
    """Rounds of coll/tuned's MPI_Reduce_scatter choice (ring: p-1; halving, butterfly: log2 p)."""
    if p < 4: ring = not (65536 <= n < 131072)
    elif p < 8: ring = n >= 262144
    elif p < 32: ring = n >= 262144
    elif p < 64: ring = n >= 524288
    else: ring = False          # butterfly for large messages
    return p - 1 if ring else log2(p)


def allgatherv_rounds(p, n):
    """Rounds of coll/tuned's MPI_Allgatherv choice, by bytes per rank."""
    per = n / p
    if p == 2: return 1                              # ring and two-process exchange: one round
    if p < 8:
        if per < 256: return p - 1 + log2(p)        # gatherv + bcast
        if per < 4096 or 8192 <= per < 16384 or per >= 262144: return p / 2   # neighbour exchange
        if per < 8192: return p - 1                  # ring
        return clog2(p)                              # Bruck
    if p < 16: return clog2(p) if per >= 1024 else p - 1 + log2(p)
    if p < 32: return clog2(p) if per < 262144 else p - 1
    if p < 64: return clog2(p) if per < 8192 else p - 1
    if p < 128: return clog2(p) if per < 4096 else p - 1
    if p < 256: return clog2(p) if per < 1024 else (p / 2 if per < 65536 else p - 1)
    if p < 512: return clog2(p) if per < 1024 else p - 1
    if p < 1024: return p / 2 if 4096 <= per < 1048576 else (p - 1 if per >= 1048576 else clog2(p))
    return clog2(p) if per < 4096 else p / 2


def coefficients(operation, p, n):
    """(alpha, beta, gamma) multipliers of one call."""
    f = (p - 1) / p
    if operation == "allreduce":
        a = allreduce_algorithm(p, n)
        if a == "rd": return log2(p), log2(p) * n, log2(p) * n
        if a in ("ring", "segring"): return 2 * (p - 1), 2 * f * n, f * n
        if a == "rab": return 2 * log2(p), 2 * f * n, f * n
        return 2 * log2(p), 2 * log2(p) * n, log2(p) * n      # reduce + broadcast trees
    if operation == "iallreduce":
        r = clog2(p)
        return 2 * r, 2 * r * n, r * n
    if operation == "reduce_scatter_allgather":
        return reduce_scatter_rounds(p, n) + allgatherv_rounds(p, n), 2 * f * n, f * n
    raise ValueError(operation)


def cost(operation, p, n, alpha, beta, gamma):
    a, b, c = coefficients(operation, p, n)
    return a * alpha + b * beta + c * gamma


# --- measurements ---------------------------------------------------------------------------

def read_jsonl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.startswith("{")]


def measure_gamma(out):
    """Seconds per byte of an in-place float32 sum (what the reduction step does), median of
    repeats at the gradient's size; cached in OUT/gamma.json."""
    path = os.path.join(out, "gamma.json")
    if os.path.exists(path):
        return json.load(open(path))["gamma_seconds_per_byte"]
    a = np.ones(GRADIENT_FLOATS, np.float32)
    b = np.ones(GRADIENT_FLOATS, np.float32)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        np.add(a, b, out=a)
        times.append(time.perf_counter() - t)
    gamma = float(np.median(times)) / (4 * GRADIENT_FLOATS)
    json.dump({"gamma_seconds_per_byte": gamma, "how": "numpy float32 add in place, 652824 floats, median of 200"}, open(path, "w"))
    return gamma


def group_name(transport, gbit):
    if transport == "shm":
        return "shared memory (1 host)"
    if transport == "veth-default":
        return "TCP, veth unlimited, no TCP progress thread"
    return "TCP, veth " + ("unlimited" if gbit is None else f"{gbit:g} Gbit/s")


def fit(points, operation, gamma):
    """alpha, beta >= 0 and the points kept: least squares on the relative error, trimmed. A rank
    that loses its core to another job adds whole scheduler periods (8, 16, 20 ms were seen) to a
    call, never less than nothing, so points more than twice the current fit are dropped and the
    fit repeated (at most half of the points)."""
    kept = list(points)
    for _ in range(10):
        alpha, beta = fit_once(kept, operation, gamma)
        model = {q: cost(operation, q[0], q[1], alpha, beta, gamma) for q in points}
        worst = sorted((q for q in kept if q[2] > 2 * model[q]), key=lambda q: q[2] / model[q], reverse=True)
        if not worst or len(kept) - 1 < (len(points) + 1) // 2:
            break
        kept.remove(worst[0])
    return alpha, beta, kept


def fit_once(points, operation, gamma):
    """alpha, beta >= 0 minimizing the relative error of `operation`'s model on (p, n, t) points."""
    rows, rhs = [], []
    for p, n, t in points:
        a, b, c = coefficients(operation, p, n)
        rows.append([a / t, b / t])
        rhs.append(1 - c * gamma / t)
    A, y = np.array(rows), np.array(rhs)
    x, *_ = np.linalg.lstsq(A, y, rcond=None)
    if x[0] < 0:   # latency cannot be negative: fit beta alone
        x = np.array([0.0, max(0.0, float(np.linalg.lstsq(A[:, 1:], y, rcond=None)[0][0]))])
    if x[1] < 0:
        x = np.array([max(0.0, float(np.linalg.lstsq(A[:, :1], y, rcond=None)[0][0])), 0.0])
    return float(x[0]), float(x[1])


def fmt_rate(samples):
    if samples >= 1e6: return f"{samples / 1e6:.2f}M"
    if samples >= 1e4: return f"{samples / 1e3:.0f}k"
    return f"{samples:.0f}"


def main():
    if len(sys.argv) == 1:
        print(project(), end="")
        return
    out = sys.argv[1]
    collectives = [r for r in read_jsonl(os.path.join(out, "collectives.jsonl")) if r.get("kind") == "collective"]
    steps = [r for r in read_jsonl(os.path.join(out, "steps.jsonl")) if r.get("kind") == "distributed_step"]
    compute = [r for r in read_jsonl(os.path.join(out, "compute.jsonl")) if r.get("kind") == "step" and r["threads"] == 1]
    if not collectives or not compute:
        sys.exit(f"scaling_model: no measurements in {out} (run bash Launch/scaling.sh {out})")
    gamma = measure_gamma(out)
    lines = []
    say = lines.append
    operations = ["allreduce", "iallreduce", "reduce_scatter_allgather"]
    groups = sorted({(r["transport"], r["link_gbit"]) for r in collectives},
                    key=lambda g: (g[0] != "shm", g[0] != "veth-default", -(g[1] or 1e9)))

    # 1. The fit, to the medians and to the fastest of the repeats. On a machine shared with other
    # jobs the medians include waiting for a core; the fastest repeat is the collective's own cost,
    # and the model fitted to it is the one used below.
    say(f"gamma (local float32 sum, numpy in place): {gamma * 1e9:.3f} ns/byte = {1 / gamma / 1e9:.1f} GB/s")
    say("")
    say("| link | collective | points | fit to medians: alpha (us), 1/beta (GB/s), points kept, median / max relative error of those (all points) | "
        "fit to the fastest repeats: the same |")
    say("| --- | --- | ---: | --- | --- |")
    params, medians = {}, {}
    def gbps(beta):
        return f"{1 / beta / 1e9:.2f}" if beta > 0 else "inf"
    for g in groups:
        for op in operations:
            rows = [r for r in collectives if (r["transport"], r["link_gbit"]) == g and r["operation"] == op
                    and r["ranks"] <= CORES]
            if len(rows) < 3:
                continue
            cells = []
            for key, store in (("seconds", medians), ("fastest_seconds", params)):
                pts = [(r["ranks"], r["bytes"], r[key]) for r in rows]
                alpha, beta, kept = fit(pts, op, gamma)
                store[(g, op)] = (alpha, beta)
                err = [abs(cost(op, p, n, alpha, beta, gamma) - t) / t for p, n, t in kept]
                every = [abs(cost(op, p, n, alpha, beta, gamma) - t) / t for p, n, t in pts]
                cells.append(f"{alpha * 1e6:.1f}, {gbps(beta)}, {len(kept)}/{len(pts)} kept, "
                             f"{100 * np.median(err):.0f}% / {100 * max(err):.0f}% (all: {100 * np.median(every):.0f}%)")
            say(f"| {group_name(*g)} | {op} | {len(rows)} | " + " | ".join(cells) + " |")
    say("")

    # 1b. One model for every link rate: alpha and beta0 of the unlimited veth (latency and the
    # per-byte cost of TCP on this CPU), plus the link's own time, 8 / rate seconds per byte sent.
    base = ("veth", None)
    def link_params(op, gbit):
        alpha, beta0 = params[(base, op)]
        return alpha, beta0 + 8 / (gbit * 1e9)
    limited = [g for g in groups if g[0] == "veth" and g[1] is not None]
    if all((base, op) in params for op in operations) and limited:
        say("The same model for a link of R Gbit/s: alpha and beta0 fitted to the unlimited veth's fastest repeats, "
            "beta = beta0 + 8/R (s per byte); its error on the rate-limited fastest repeats (nothing fitted to them):")
        say("")
        say("| link | collective | 1/beta model (GB/s) | 1/beta fitted alone (GB/s) | median error | max error |")
        say("| --- | --- | ---: | ---: | ---: | ---: |")
        for g in limited:
            for op in operations:
                pts = [(r["ranks"], r["bytes"], r["fastest_seconds"]) for r in collectives
                       if (r["transport"], r["link_gbit"]) == g and r["operation"] == op and r["ranks"] <= CORES]
                if not pts or (g, op) not in params:
                    continue
                alpha, beta = link_params(op, g[1])
                err = [abs(cost(op, p, n, alpha, beta, gamma) - t) / t for p, n, t in pts]
                alone = params[(g, op)][1]
                say(f"| {group_name(*g)} | {op} | {1 / beta / 1e9:.3f} | {(1 / alone / 1e9) if alone > 0 else float('inf'):.3f} | "
                    f"{100 * np.median(err):.0f}% | {100 * max(err):.0f}% |")
        say("")

    # 2. Measured against modelled at a few sizes (median seconds of repeats).
    sizes = sorted({r["bytes"] for r in collectives})
    shown = [s for s in sizes if s in (4096, 65536, 1048576, 4 * GRADIENT_FLOATS, 4194304)]
    say("Measured median / fastest repeat / model (fitted to the fastest), microseconds (" + ", ".join(f"{s // 1024} KB" if s % 1024 == 0 else f"{s / 1e6:.1f} MB" for s in shown) + "):")
    say("")
    say("| link | collective | ranks | " + " | ".join(f"{s:,} B" for s in shown) + " |")
    say("| --- | --- | ---: | " + " | ".join("---:" for _ in shown) + " |")
    for g in groups:
        for op in operations:
            if (g, op) not in params:
                continue
            alpha, beta = params[(g, op)]
            for p in sorted({r["ranks"] for r in collectives}):
                cells = []
                for s in shown:
                    m = [r for r in collectives if (r["transport"], r["link_gbit"]) == g
                         and r["operation"] == op and r["ranks"] == p and r["bytes"] == s]
                    cells.append(f"{m[0]['seconds'] * 1e6:.0f} / {m[0]['fastest_seconds'] * 1e6:.0f} / "
                                 f"{cost(op, p, s, alpha, beta, gamma) * 1e6:.0f}" if m else "")
                if any(cells):
                    say(f"| {group_name(*g)} | {op} | {p} | " + " | ".join(cells) + " |")
    say("")

    # 3. The compute rate (1 rank, 1 thread) and the step model.
    by_batch = {r["batch"]: r for r in compute}
    def compute_seconds(b):
        """Forward, backward and batch preparation at per-rank batch b, interpolated in b."""
        bs = sorted(by_batch)
        ts = [by_batch[x]["step_seconds"] * by_batch[x]["compute_fraction"] for x in bs]
        return float(np.interp(b, bs, ts))
    optimizer_seconds = float(np.median([r["step_seconds"] * r["optimizer_fraction"] for r in compute]))
    say("Single rank, 1 thread (`vae-dist bench`): " + ", ".join(
        f"batch {b}: {by_batch[b]['samples_per_second']:,.0f} samples/s ({by_batch[b]['samples_per_second'] * FLOPS_PER_EXAMPLE / 1e9:.1f} GFLOP/s)"
        for b in sorted(by_batch)) + f"; Adam over 652,824 parameters {optimizer_seconds * 1e3:.2f} ms per step.")
    say("")

    def exposed(strategy, g, p, b, ideal=False):
        """Modelled communication a step waits for (seconds)."""
        n = 4 * GRADIENT_FLOATS
        if strategy == "after-backward":
            return cost("allreduce", p, n, *params[(g, "allreduce")], gamma)
        if strategy == "sharded":
            return cost("reduce_scatter_allgather", p, n, *params[(g, "reduce_scatter_allgather")], gamma)
        op = "allreduce" if ideal else "iallreduce"
        t1, t2 = (cost(op, p, 4 * k, *params[(g, op)], gamma) for k in BUCKETS)
        window = HIDDEN_SHARE * compute_seconds(b)
        return max(0.0, t1 - window) + t2

    def step_seconds(strategy, g, p, b, ideal=False):
        opt = optimizer_seconds / p if strategy == "sharded" else optimizer_seconds
        return compute_seconds(b) + exposed(strategy, g, p, b, ideal) + opt

    # 4. Model against the measured training steps.
    if steps:
        say("Training step on 2 ranks (`mpirun -n 2 vae-dist bench`), measured / modelled:")
        say("")
        say("| link | strategy | batch per rank | exposed communication, ms | samples/s |")
        say("| --- | --- | ---: | ---: | ---: |")
        for r in steps:
            g = (r["transport"], r["link_gbit"])
            if (g, "allreduce") not in params:
                continue
            p, b, s = r["ranks"], r["batch_per_rank"], r["strategy"]
            if s.startswith("shared-memory") or s == "bf16":
                continue  # no MPI collective to model (and across hosts it falls back to one); bf16: `project`
            model_comm = exposed(s, g, p, b) * 1e3
            model_rate = p * b / step_seconds(s, g, p, b)
            say(f"| {group_name(*g)} | {s} | {b} | {r['communication_ms_per_step']:.2f} / {model_comm:.2f} | "
                f"{r['samples_per_second']:,.0f} / {model_rate:,.0f} |")
        say("")

    # 5. Projections at 1, 10 and 25 Gbit/s.
    batches = [16, 32, 64, 128, 256]
    ranks = [8, 64, 512, 4096]
    strategies = [("after-backward", False, "allreduce after backward (Rabenseifner)"),
                  ("overlapped", False, "overlapped buckets, as built (libnbc binomial)"),
                  ("overlapped", True, "overlapped buckets, Rabenseifner-class algorithm"),
                  ("sharded", False, "sharded optimizer (reduce-scatter + allgather, Adam on 1/p)")]
    for gbit in (1, 10, 25):
        g = ("link", gbit)
        if any((base, op) not in params for op in operations):
            break
        for op in operations:
            params[(g, op)] = link_params(op, gbit)
        say(f"Projection at {gbit} Gbit/s (alpha and beta0 of the veth links, beta = beta0 + 8/{gbit}e9): "
            "samples/s (scaling efficiency against p x one rank)")
        say("")
        say("| ranks | strategy | " + " | ".join(f"batch {b}" for b in batches) + " |")
        say("| ---: | --- | " + " | ".join("---:" for _ in batches) + " |")
        for p in ranks:
            for name, ideal, label in strategies:
                cells = []
                for b in batches:
                    t = step_seconds(name, g, p, b, ideal)
                    single = compute_seconds(b) + optimizer_seconds
                    cells.append(f"{fmt_rate(p * b / t)} ({100 * single / t:.0f}%)")
                say(f"| {p} | {label} | " + " | ".join(cells) + " |")
        say("")
        # Where communication starts to dominate: the per-rank batch at which it equals compute.
        crossings = []
        for p in ranks:
            comm = exposed("after-backward", g, p, 128)
            per_example = compute_seconds(128) / 128
            crossings.append(f"{p} ranks: {comm * 1e3:.1f} ms per allreduce = compute of {comm / per_example:,.0f} examples per rank")
        say(f"At {gbit} Gbit/s, communication equals compute at: " + "; ".join(crossings) + ".")
        say("")

    # Overlap: how much of the reduction hides.
    for gbit in (1, 10, 25):
        g = ("link", gbit)
        if (g, "iallreduce") not in params:
            continue
        parts = []
        for p in (8, 512):
            for b in (32, 256):
                for ideal in (False, True):
                    op = "allreduce" if ideal else "iallreduce"
                    total = sum(cost(op, p, 4 * k, *params[(g, op)], gamma) for k in BUCKETS)
                    hidden = total - exposed("overlapped", g, p, b, ideal)
                    parts.append(f"{p} ranks batch {b} {'Rabenseifner' if ideal else 'binomial'}: {100 * hidden / total:.0f}%")
        say(f"Share of the reduction hidden behind backward at {gbit} Gbit/s: " + "; ".join(parts) + ".")
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "tables.md"), "w").write(text)
    print(text, end="")


# --- the 2026-12-06 refit: every strategy, projected ----------------------------------------
#
# Every collective of vae-dist is nonblocking now (libnbc), so one latency and one per-byte CPU
# cost of TCP serve them all: alpha = 8.9 us and 1/beta0 = 1.75 GB/s, the fit of the in-place
# MPI_Iallreduce to the unlimited veth's fastest repeats (2026-11-25 table), and a link of R bit/s
# adds 8/R s per byte. That model, fitted to nothing measured on 2026-12-06, predicts libnbc's
# Rabenseifner on 4 hosts at 1 Gbit/s (2.6 MB) in 33.7 ms; measured 33.6 ms (fastest). The same
# measurement gave the ring 43.7 ms and the binomial tree 56.4 ms where the formulas say 33.7 and
# 89.5: each algorithm's bandwidth term is scaled by its measured / modelled ratio (one point
# each, 4 hosts; `BANDWIDTH_FACTOR`). gamma: numpy's fp32 add, 0.036 ns/byte.
ALPHA = 8.9e-6
BETA0 = 1 / 1.75e9
GAMMA = 0.036e-9
# Seconds per value rounded to 16 bits or widened back (vae-dist's scalar loops), about 3 per
# parameter and step (round the gradient, widen every received block, round the summed block,
# widen the result). `mpirun -n 2 vae-dist bench --batches 256 --threads 1` on one host
# (2026-12-06): bf16 exposed 24.5 / 19.5 ms against fp32 after backward's 20.2 / 15.6 ms, ~4 ms
# for ~2M conversions at a load where the step's compute ran 3.4x slower than `vae-dist bench`'s
# median: ~0.6 ns per value on that footing.
CONVERT = 0.6e-9
MEASURED_4_HOSTS_1GBIT = {"rabenseifner": 33.6e-3, "ring": 43.7e-3, "binomial": 56.4e-3}
N_BYTES = 4 * GRADIENT_FLOATS


def link_beta(gbit):
    return BETA0 + 8 / (gbit * 1e9)


def algorithm_terms(algorithm, p, n):
    """(alpha, beta, gamma) multipliers of libnbc's MPI_Iallreduce of n bytes on p ranks (p a power of two)."""
    f, r = (p - 1) / p, clog2(p)
    if algorithm == "binomial": return 2 * r, 2 * r * n, r * n
    if algorithm == "ring": return 2 * (p - 1), 2 * f * n, f * n
    if algorithm == "rabenseifner": return 2 * log2(p), 2 * f * n, f * n
    raise ValueError(algorithm)


def bandwidth_factor(algorithm):
    """Measured / modelled bandwidth term of an algorithm, from the 4-host 1 Gbit/s point."""
    a, b, c = algorithm_terms(algorithm, 4, N_BYTES)
    rest = a * ALPHA + c * GAMMA
    return (MEASURED_4_HOSTS_1GBIT[algorithm] - rest) / (b * link_beta(1))


BANDWIDTH_FACTOR = {a: bandwidth_factor(a) for a in MEASURED_4_HOSTS_1GBIT}


def iallreduce(algorithm, p, n, beta):
    a, b, c = algorithm_terms(algorithm, p, n)
    return a * ALPHA + b * beta * BANDWIDTH_FACTOR[algorithm] + c * GAMMA


def reduction_seconds(strategy, p, k, gbit):
    """Seconds of one step's gradient reduction on p ranks, k per node sharing the node's link of
    gbit Gbit/s (k = 1: every rank its own link). With k > 1 the flat algorithms place consecutive
    ranks on a node: Rabenseifner's first log2 k halving steps and the ring's other k - 1 edges
    stay inside the node (Open MPI's shared-memory transport, 1/beta 3.86 GB/s), the rest crosses
    the link; the binomial tree's log2 k first rounds likewise."""
    n, beta, beta_shm = N_BYTES, link_beta(gbit), 1 / 3.86e9
    nodes = p // k
    if strategy in ("binomial", "ring", "rabenseifner"):
        if k == 1: return iallreduce(strategy, p, n, beta)
        inside = iallreduce(strategy, k, n, beta_shm) if strategy != "ring" else 0.0
        if strategy == "ring":  # every edge carries 2 (p-1)/p n; the node's one outgoing edge is its link
            return 2 * (p - 1) * ALPHA + 2 * (p - 1) / p * n * beta * BANDWIDTH_FACTOR["ring"] + (p - 1) / p * n * GAMMA
        if strategy == "rabenseifner":  # the node's k ranks cross with 1/k of the buffer each, together n
            return inside + iallreduce("rabenseifner", nodes, n, beta) if nodes > 1 else inside
        return inside + iallreduce("binomial", nodes, n, beta) if nodes > 1 else inside
    if strategy == "hierarchical":
        # Slots summed through the node's shared window (each local rank 1/k of n, over k slots:
        # n gamma), 3 node barriers (~3 us each), then the k local ranks' Rabenseifner of n/k each
        # across the nodes, through the one link: together one buffer n.
        across = iallreduce("rabenseifner", nodes, n, beta) if nodes > 1 else 0.0
        return n * GAMMA + 3 * 3e-6 + across
    if strategy == "bf16":
        # As built: MPI_Ialltoallv (libnbc: every pair at once) + MPI_Iallgatherv of 16-bit blocks,
        # fp32 sums; rounding and widening ~3 passes over the n/4 values. Each rank's blocks cross
        # the link separately: a node's link carries k (p-k)/p of the n/2 bytes, twice.
        cross = (p - k) / p if k > 1 else (p - 1) / p
        return (2 * (p - 1) * ALPHA + 2 * k * cross * (n / 2) * beta
                + (p - 1) / p * n * GAMMA + 3 * (n / 4) * CONVERT)
    if strategy == "hierarchical-bf16":
        # Built 2026-12-06 (uniform nodes): the node sum as "hierarchical", then each local rank's
        # 1/k block of it through CompressedSum among the nodes: MPI_Ialltoallv + MPI_Iallgatherv
        # of 16-bit blocks over `nodes` ranks, fp32 sums. The node's k local ranks cross together:
        # the link carries 2 (nodes-1)/nodes of n/2 bytes; every local rank pays 2 (nodes-1)
        # latencies (the k run at once).
        if nodes < 2:
            return n * GAMMA + 3 * 3e-6
        return (n * GAMMA + 3 * 3e-6 + 2 * (nodes - 1) * ALPHA + 2 * (nodes - 1) / nodes * (n / 2) * beta
                + (nodes - 1) / nodes * n / k * GAMMA + 3 * (n / 4 / k) * CONVERT)
    if strategy == "bf16-rabenseifner":
        # Not built: Rabenseifner's halving and doubling on 16-bit blocks, fp32 sums (the rounding
        # at every halving step, or a fp32 accumulator per step): half the bytes of fp32.
        base = reduction_seconds("rabenseifner", p, k, gbit) if k == 1 else reduction_seconds("hierarchical", p, k, gbit)
        a, b, c = algorithm_terms("rabenseifner", nodes if k > 1 else p, n)
        return base - b * beta * BANDWIDTH_FACTOR["rabenseifner"] / 2 + 3 * (n / 4) * CONVERT
    raise ValueError(strategy)


def project(compute_samples_per_second=None, batch=256):
    """The 2026-12-06 projection table (markdown)."""
    rate = compute_samples_per_second or COMPUTE_SAMPLES_PER_SECOND
    compute = batch / rate + ADAM_SECONDS
    # (strategy, overlapped, label). "Overlapped" rows: as measured with the progress thread
    # (OVERLAP_EXPOSED of the reduction exposed) / if the whole 21% of backward after the
    # decoder's bucket starts (HIDDEN_SHARE) hid reduction time.
    rows = [("binomial", True, "overlapped, binomial tree (libnbc's own; before 2026-12-06)"),
            ("ring", True, "overlapped, ring (default on 3-31 ranks not a power of two)"),
            ("rabenseifner", True, "overlapped, Rabenseifner (default on powers of two and > 32)"),
            ("rabenseifner", False, "after backward, Rabenseifner (`--bucket-mb 0`)"),
            ("hierarchical", False, "hierarchical (default with several ranks per node)"),
            ("bf16", False, "`--grad-compression bf16` as built (all-to-all + allgather)"),
            ("hierarchical-bf16", False, "hierarchical, `--grad-compression bf16` (its cross-node leg all-to-all + allgather)"),
            ("bf16-rabenseifner", False, "bf16 on Rabenseifner (not built)")]
    lines = [f"Per-rank batch {batch}, {rate:,.0f} samples/s per rank (1 thread) + Adam {ADAM_SECONDS * 1e3:.2f} ms: "
             f"{compute * 1e3:.1f} ms of compute per step. Scaling efficiency = compute / (compute + exposed reduction); "
             f"overlapped rows: as measured with the progress thread ({100 * OVERLAP_EXPOSED:.0f}% of the reduction exposed) / "
             "if the 21% of the step after the decoder's bucket starts were all hidden.", ""]
    for k, title in ((1, "one rank per node (every rank its own link)"), (8, "8 ranks per node sharing one link")):
        ranks = [p for p in (8, 64, 512, 4096) if p >= 2 * k]
        lines.append(f"**{title}**")
        lines.append("")
        lines.append("| link | strategy | " + " | ".join(f"{p} ranks" for p in ranks) + " |")
        lines.append("| --- | --- | " + " | ".join("---:" for _ in ranks) + " |")
        for g in (1, 10, 25):
            for strategy, overlapped, label in rows:
                if k == 1 and strategy in ("hierarchical", "hierarchical-bf16"):
                    continue
                cells = []
                for p in ranks:
                    t = reduction_seconds(strategy, p, k, g)
                    eff = compute / (compute + t)
                    if overlapped:
                        hidden = min(t, HIDDEN_SHARE * (batch / rate))
                        cells.append(f"{100 * compute / (compute + OVERLAP_EXPOSED * t):.0f}% / {100 * compute / (compute + t - hidden):.0f}%")
                    else:
                        cells.append(f"{100 * eff:.0f}%")
                lines.append(f"| {g} Gbit/s | {label} | " + " | ".join(cells) + " |")
        lines.append("")
    default = reduction_seconds("rabenseifner", 512, 1, 10)
    lines.append(f"The default at 512 ranks, 10 Gbit/s, per-rank batch {batch} (one rank per node, overlapped "
                 f"Rabenseifner with the progress thread): reduction {default * 1e3:.1f} ms against {compute * 1e3:.1f} ms of compute: "
                 f"{100 * compute / (compute + OVERLAP_EXPOSED * default):.0f}% as measured ({100 * OVERLAP_EXPOSED:.0f}% of it exposed), "
                 f"{100 * compute / (compute + default - min(default, HIDDEN_SHARE * batch / rate)):.0f}% if the whole window hid it, "
                 f"{100 * compute / (compute + default):.0f}% with nothing hidden.")
    fast = FASTEST_SAMPLES_PER_SECOND
    fast_compute = batch / fast + ADAM_SECONDS
    lines.append(f"With the fastest step's compute ({fast:,.0f} samples/s, a quiet core): {fast_compute * 1e3:.1f} ms, "
                 f"{100 * fast_compute / (fast_compute + OVERLAP_EXPOSED * default):.0f}% as measured, "
                 f"{100 * fast_compute / (fast_compute + default - min(default, HIDDEN_SHARE * batch / fast)):.0f}% if the whole window hid it.")
    lines.append("Bandwidth factors fitted to 2026-12-06 (measured / modelled, 4 hosts, 1 Gbit/s): "
                 + ", ".join(f"{a} {f:.2f}" for a, f in BANDWIDTH_FACTOR.items()) + ".")
    return "\n".join(lines) + "\n"


# Measured for the refit on 2026-12-06, Intel Xeon family 6 model 207, load average 6.4:
# `vae-dist bench --batches 256 --threads 1`: median step 10.45 ms (24,491 samples/s), of which
# 93% batch, forward and backward (9.72 ms: 26,300 samples/s) and 7% Adam (0.73 ms); the fastest
# step took 5.80 ms (44,100 samples/s: a quiet core; `FASTEST_SAMPLES_PER_SECOND`).
COMPUTE_SAMPLES_PER_SECOND = 256 / (0.93 * 10.45e-3)
ADAM_SECONDS = 0.07 * 10.45e-3
FASTEST_SAMPLES_PER_SECOND = 256 / (0.93 * 5.80e-3)


if __name__ == "__main__":
    main()
