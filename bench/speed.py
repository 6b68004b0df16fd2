#!/usr/bin/python3
"""speed.py - codid's engine against PyTorch eager, same weights, same threads.

    /usr/bin/python3 bench/speed.py [--quick] [--out SECTION.md] [--json RAW.json]

Both sides are long-lived worker processes loading the same safetensors
file: build/tools/bench_engine (engine.h) and this script in --worker mode
(bench/eager_unet.py, bench/eager_codi.py). The driver alternates them
round by round, so that both see the same background load, and reports
medians of each side and the median of the per-round ratios codid/eager.
It prints figures and asserts nothing about them.

Sections of the markdown it writes: correctness (max |eager - codid|),
forward at several batch sizes on two configs, one CoDi training step,
the arithmetic (MACs, GFLOP/s) against a 2048^3 SGEMM measured in each
worker process with 1 and 2 OpenBLAS threads.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import eager_codi  # noqa: E402
import eager_unet  # noqa: E402

ROOT = os.path.dirname(HERE)
MODELS = [
    # (name, config file, model folder made with random weights)
    ("cifar10-base", "models/cifar10-base/config.json", "var/bench/models/cifar10-base"),
    ("ddpm-cifar10-32", "bench/configs/ddpm-cifar10-32.json", "var/bench/models/ddpm-cifar10-32"),
]
TRAIN_MODEL, TRAIN_BATCH = "cifar10-base", 64
# Allocator variants (environment of a worker, so both sides can have them):
# on this VM every fresh large activation tensor is faulted in page by page,
# which costs as much as the arithmetic at large batch. `mallopt` keeps
# freed blocks up to 32 MiB in the heap (what a process can set for itself
# with mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD)); `thp` has glibc back
# its large blocks with 2 MiB transparent huge pages.
VARIANT_ENV = {
    "mallopt": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "thp": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}
ALLOCATOR_SIDES = ("codid", "codid+mallopt", "codid+thp", "eager", "eager+thp")
# the oneDNN reference: batch, channels in = out, side of a 3x3 convolution
CONV_PEAK = (8, 256, 32)
CONV_PEAK_SHAPE = "batch {0}, {1} -> {1} channels, {2}x{2}".format(*CONV_PEAK)


def conv_peak_macs():
    b, c, side = CONV_PEAK
    return b * c * side * side * c * 9


# ---- the eager worker -------------------------------------------------------


def openblas():
    """The OpenBLAS instance torch loaded (one per process, found by soname)."""
    try:
        return ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return None


def worker(model_dir, threads):
    """The eager side of the protocol of tests/tools/bench_engine.c."""
    torch.set_num_threads(threads)
    model = eager_unet.load_model(model_dir)
    cfg = model.config
    blas = openblas()
    blas_threads = blas.openblas_get_num_threads() if blas else 0
    trainer = None
    print(f"ready {sum(p.numel() for p in model.parameters())} parameters, "
          f"{torch.get_num_threads()} threads, openblas {blas_threads}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "blas_threads" and len(words) == 2:
            if blas:
                blas.openblas_set_num_threads(int(words[1]))
            print("ok" if blas else "error no OpenBLAS", flush=True)
            continue
        cmd, x, reps = words[0], int(words[1]), int(words[2])
        if cmd == "forward":
            gen = torch.Generator().manual_seed(1)
            inp = torch.rand(x, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"],
                             generator=gen) * 2 - 1

            def run():
                with torch.inference_mode():
                    model(inp, 500.0)
        elif cmd == "train":
            if trainer is None or trainer.batch != x:
                gen = torch.Generator().manual_seed(2)
                images = torch.randint(0, 256, (512, cfg["in_channels"], cfg["sample_size"],
                                                cfg["sample_size"]), dtype=torch.uint8,
                                       generator=gen)
                trainer = eager_codi.CoDiTrainer(model, model_dir, images, x)
            run = trainer.step
        elif cmd == "conv":
            b, c, side = CONV_PEAK
            inp, w = torch.rand(b, c, side, side), torch.rand(c, c, 3, 3)

            def run():
                with torch.inference_mode():
                    F.conv2d(inp, w, padding=1)
        elif cmd == "sgemm":
            a, b = torch.rand(x, x), torch.rand(x, x)

            def run():
                torch.mm(a, b)
        else:
            print(f"error unknown command {cmd}", flush=True)
            continue
        wall, cpu = [], []
        for _ in range(reps):
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            wall.append((time.perf_counter() - w0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        print("ms " + " ".join(f"{v:.3f}" for v in wall) + " cpu " +
              " ".join(f"{v:.3f}" for v in cpu), flush=True)


# ---- the driver ---------------------------------------------------------------


class Side:
    """One worker process spoken to line by line."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=dict(os.environ, **(env or {})))
        self.banner = self.proc.stdout.readline().strip()
        if not self.banner.startswith("ready"):
            raise RuntimeError(f"{name} worker did not start: {self.banner!r}")

    def ask(self, line):
        """Wall-clock and CPU milliseconds of each repetition ([] for 'ok')."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer == "ok":
            return [], []
        if not answer.startswith("ms ") or " cpu " not in answer:
            raise RuntimeError(f"{self.name}: {line!r} -> {answer!r}")
        wall, cpu = answer[3:].split(" cpu ")
        return [float(v) for v in wall.split()], [float(v) for v in cpu.split()]

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def start_sides(build, model_dir, threads, omp_policy, variants=("codid", "eager")):
    """Workers by name: codid or eager, optionally '+' a VARIANT_ENV key."""
    sides = {}
    env = {"OMP_WAIT_POLICY": omp_policy} if omp_policy != "default" else {}
    for name in variants:
        kind, _, variant = name.partition("+")
        argv = ([os.path.join(build, "tools", "bench_engine"), "serve", "--model", model_dir,
                 "--threads", str(threads)] if kind == "codid" else
                [sys.executable, os.path.join(HERE, "speed.py"), "--worker", "--model", model_dir,
                 "--threads", str(threads)])
        sides[name] = Side(name, argv, dict(env, **VARIANT_ENV.get(variant, {})))
    return sides


def close_sides(sides):
    for side in sides.values():
        side.close()


def interleaved(sides, command, rounds, target_ms, warm=2):
    """Per-repetition means of `command` (a 'forward N' or 'train B'), one
    sample per round and side, the sides' order reversing every round;
    ratios are each side's over the plain eager side's of the same round,
    of wall-clock time and of CPU time."""
    warm_ms = 0.0
    for _ in range(warm):
        warm_ms = max(side.ask(f"{command} 1")[0][0] for side in sides.values())
    reps = max(1, min(50, round(target_ms / max(warm_ms, 1e-3))))
    wall = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    order = list(sides.values())
    for r in range(rounds):
        for side in (order if r % 2 == 0 else order[::-1]):
            w, c = side.ask(f"{command} {reps}")
            wall[side.name].append(statistics.fmean(w))
            cpu[side.name].append(statistics.fmean(c))
    out = {"reps_per_round": reps, "rounds": rounds, "wall": wall, "cpu": cpu}
    for name in sides:
        ratios = [a / e for a, e in zip(wall[name], wall["eager"])]
        cpu_ratios = [a / e for a, e in zip(cpu[name], cpu["eager"])]
        out[name] = {"median_ms": statistics.median(wall[name]), "min_ms": min(wall[name]),
                     "cpu_ms": statistics.median(cpu[name]),
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                     "ratio_max": max(ratios), "cpu_ratio": statistics.median(cpu_ratios)}
    return out


def sgemm_figures(sides, size, reps):
    """Best-of-reps SGEMM time in each process with 1 and 2 OpenBLAS threads."""
    out = {}
    engine, eager = sides["codid"], sides["eager"]
    for name, side in (("codid", engine), ("eager", eager)):
        for n in (1, 2):
            side.ask(f"blas_threads {n}")
            side.ask(f"sgemm {size} 1")
            out[f"{name}_blas{n}_ms"] = min(side.ask(f"sgemm {size} {reps}")[0])
    eager.ask("conv 1 1")
    out["eager_conv_ms"] = min(eager.ask(f"conv 1 {reps}")[0])
    engine.ask("blas_threads 1")  # codid's own setting (eng_ctx_create)
    eager.ask(f"blas_threads {eager_default_blas_threads(eager)}")
    return out


def eager_default_blas_threads(eager):
    return int(eager.banner.rsplit(" ", 1)[1])


def ensure_models(build):
    for _, config, folder in MODELS:
        if not os.path.exists(os.path.join(ROOT, folder, "diffusion_pytorch_model.safetensors")):
            os.makedirs(os.path.join(ROOT, os.path.dirname(folder)), exist_ok=True)
            subprocess.run([os.path.join(build, "tools", "bench_engine"), "create", "--config", config, "--out",
                            folder, "--seed", "1"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def check_outputs(build, folder, threads):
    out = subprocess.run([sys.executable, os.path.join(HERE, "eager_unet.py"), "check",
                          "--codid", os.path.join(build, "codid"), "--model", folder,
                          "--threads", str(threads)], cwd=ROOT,
                         capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()
    return float(last.split()[1]) if last.startswith("max_abs_diff") else float("nan")


def forward_macs(folder):
    model = eager_unet.load_model(os.path.join(ROOT, folder))
    cfg = model.config
    x = torch.zeros(1, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"])
    with torch.inference_mode():
        return eager_unet.count_macs([model], lambda: model(x, 500.0)), model


def op_profile(model, batch, threads, top=8):
    """Self CPU time share of the most expensive ops of one eager forward
    (torch.profiler): codid calls the same libtorch kernels."""
    torch.set_num_threads(threads)
    cfg = model.config
    x = torch.rand(batch, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"])
    with torch.inference_mode():
        model(x, 500.0)
        with torch.profiler.profile() as prof:
            model(x, 500.0)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [(e.key, e.count, e.self_cpu_time_total / total) for e in events[:top]]


def train_macs(model, folder, batch):
    cfg = model.config
    images = torch.zeros(batch, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"],
                         dtype=torch.uint8)
    trainer = eager_codi.CoDiTrainer(model, os.path.join(ROOT, folder), images, batch)
    return eager_unet.count_macs([model, trainer.online, trainer.ema], trainer.step)


def gflops(macs, ms):
    return 2 * macs / (ms * 1e-3) / 1e9


def fmt_ratio(r):
    return (f"**{r['ratio']:.2f}** [{r['ratio_min']:.2f}-{r['ratio_max']:.2f}] | "
            f"{r['cpu_ratio']:.2f}")


def fmt_ms(r, digits=1):
    return f"{r['median_ms']:.{digits}f} ({r['min_ms']:.{digits}f})"


def markdown(res):
    n, macs_of = res["sgemm_size"], res["models"]
    policy = ("left unset (libgomp spins)" if res["omp_policy"] == "default"
              else f"`OMP_WAIT_POLICY={res['omp_policy']}`")
    lines = ["## Speed: codid engine vs PyTorch eager", "",
             f"Both sides load the same safetensors file (random weights, seed 1) and run with "
             f"{res['threads']} torch intra-op threads, OpenMP wait policy {policy} on both; "
             f"codid's eng_ctx_create sets OpenBLAS to 1 thread, the eager side leaves it at its "
             f"default ({res['eager_blas_default']}). Each side is a long-lived worker "
             f"(build/tools/bench_engine, bench/speed.py --worker); the driver interleaves them "
             f"for {res['rounds']} rounds, each the mean of a few repetitions after 2 warm-up "
             f"calls. ms: median wall-clock time over the rounds (best round in brackets). "
             f"codid/eager: median of the per-round ratios of wall-clock time [range], then of "
             f"process CPU time (the steadier figure when other jobs share the cores). "
             f"Goals: forward <= 0.9, training step <= 1.0.", "",
             "### Same outputs", "",
             "`bench/eager_unet.py check`: batch 2, t = 0, 500, 999, against `codid forward`.", "",
             "| model | max abs diff |", "|---|---|"]
    lines += [f"| {name} | {diff:.2g} |" for name, diff in res["check"].items()]
    lines += ["", "### Forward (one UNet evaluation, t = 500)", "",
              "| model | params | batch | codid ms | eager ms | codid/eager wall | cpu | "
              "codid GFLOP/s | eager GFLOP/s |", "|---|---|---|---|---|---|---|---|---|"]
    for f in res["forward"]:
        m = macs_of[f["model"]]
        macs = m["macs"]["forward"] * f["batch"]
        c, e = f["codid"], f["eager"]
        lines.append(
            f"| {f['model']} | {m['params'] / 1e6:.2f}M | {f['batch']} | {fmt_ms(c)} | "
            f"{fmt_ms(e)} | {fmt_ratio(c)} | {gflops(macs, c['median_ms']):.1f} | "
            f"{gflops(macs, e['median_ms']):.1f} |")
    if "train" in res:
        t, tm = res["train"], res["train_macs"]
        total = tm["forward"] + tm["backward"]
        lines += ["", "### One CoDi training step", "",
                  f"{TRAIN_MODEL}, batch {TRAIN_BATCH}, controlnet adapter, sr x4: "
                  f"eng_trainer_step of a `distill` trainer against bench/eager_codi.py, the same "
                  f"math in eager PyTorch (torch.optim.AdamW, clip_grad_norm_, an EMA loop). "
                  f"Counted per step: {tm['forward'] / 1e9:.1f} GMAC forward (three base "
                  f"UNets, two adapters) + {tm['backward'] / 1e9:.1f} GMAC backward.", "",
                  "| codid ms | eager ms | codid/eager wall | cpu | codid GFLOP/s | "
                  "eager GFLOP/s |", "|---|---|---|---|---|---|",
                  f"| {fmt_ms(t['codid'], 0)} | {fmt_ms(t['eager'], 0)} | "
                  f"{fmt_ratio(t['codid'])} | {gflops(total, t['codid']['median_ms']):.1f} | "
                  f"{gflops(total, t['eager']['median_ms']):.1f} |"]
    if res["allocator"]:
        lines += ["", "### The memory allocator", "",
                  "The same workloads with glibc malloc told to keep its memory: "
                  + "; ".join(f"`{v}`: `{' '.join(f'{k}={x}' for k, x in e.items())}`"
                              for v, e in VARIANT_ENV.items())
                  + " (mallopt: freed blocks up to 32 MiB stay in the heap instead of going back "
                  "to the kernel, which faults them in again page by page at the next "
                  "allocation; thp: large blocks on 2 MiB pages, one fault per 2 MiB). "
                  "ms: median wall-clock; in brackets, the median per-round ratio to plain "
                  "eager. Every `codid` command restarts itself once with the thp setting "
                  "(server/main.c; CODID_HUGEPAGES=0 turns it off), so `codid+thp` is codid as "
                  "shipped, and `codid+thp` over plain `eager` is what a user switching from a "
                  "default PyTorch process sees.", "", "| workload | " + " | ".join(ALLOCATOR_SIDES) + " |",
                  "|---|" + "---|" * len(ALLOCATOR_SIDES)]
        for a in res["allocator"]:
            lines.append(f"| {a['what']} | " + " | ".join(
                f"{a[v]['median_ms']:.0f} ({a[v]['ratio']:.2f})" for v in ALLOCATOR_SIDES) + " |")
    lines += ["", "### Where the time goes", "",
              "Self CPU time of the costliest ops of one eager forward at the largest batch "
              "(torch.profiler; codid runs the same libtorch kernels, called from C++). "
              "mkldnn_convolution includes oneDNN's conversions of activations and weights "
              "between torch's NCHW and its blocked layouts at every call.", ""]
    for name, ops in res["profile"].items():
        lines.append(f"- {name}, batch {[f['batch'] for f in res['forward'] if f['model'] == name][-1]}: "
                     + ", ".join(f"{op} {share:.0%} ({count} calls)" for op, count, share in ops))
    s = res["sgemm"]
    lines += ["", "### Arithmetic", "",
              "MACs per image of one forward, counted from the architecture (convolutions, "
              "linear layers, the two attention matmuls; norms, activations and softmax are not "
              "counted). GFLOP/s above = 2 x MACs / median wall-clock time.", "",
              "| model | conv | linear | attention | total GMAC |", "|---|---|---|---|---|"]
    for name, m in macs_of.items():
        c = m["macs"]
        lines.append(f"| {name} | {c['conv'] / 1e6:.1f}M | {c['linear'] / 1e6:.1f}M | "
                     f"{c['attention'] / 1e6:.1f}M | {c['forward'] / 1e9:.3f} |")
    lines += ["", f"Peak references, best of {res['sgemm_reps']}, {res['threads']} torch threads: "
              f"a {n}x{n}x{n} SGEMM through OpenBLAS in each worker process, and a 3x3 "
              f"convolution through oneDNN ({CONV_PEAK_SHAPE}) in the eager one.", "",
              "| process | SGEMM, OpenBLAS 1 thread | SGEMM, OpenBLAS 2 threads |",
              "|---|---|---|"]
    for side in ("codid", "eager"):
        lines.append(f"| {side} | {gflops(n ** 3, s[f'{side}_blas1_ms']):.1f} GFLOP/s | "
                     f"{gflops(n ** 3, s[f'{side}_blas2_ms']):.1f} GFLOP/s |")
    lines += ["", f"oneDNN 3x3 convolution: {gflops(conv_peak_macs(), s['eager_conv_ms']):.1f} "
              "GFLOP/s.", ""]
    return "\n".join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches and rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build", help="the build folder (codid, tools/)")
    ap.add_argument("--omp-wait-policy", default="passive",
                    help="OMP_WAIT_POLICY of both sides' workers; 'default' leaves it unset")
    ap.add_argument("--out", help="append the markdown section to this file")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.model, args.threads)
        return 0

    os.chdir(ROOT)
    build = args.build
    ensure_models(build)
    rounds = 3 if args.quick else 7
    target = 1500 if args.quick else 3000
    batches = {"cifar10-base": [1, 8, 32], "ddpm-cifar10-32": [1, 8] if args.quick else [1, 8, 32]}
    res = {"threads": args.threads, "omp_policy": args.omp_wait_policy, "rounds": rounds, "quick": args.quick, "check": {},
           "models": {}, "forward": [], "allocator": [], "profile": {}, "sgemm_size": 2048,
           "sgemm_reps": 3 if args.quick else 5}
    for name, _, folder in MODELS:
        log(f"{name}: checking outputs against codid forward")
        res["check"][name] = check_outputs(build, folder, args.threads)
        macs, model = forward_macs(folder)
        res["models"][name] = {"macs": macs, "params": sum(p.numel() for p in model.parameters())}
        if name == TRAIN_MODEL:
            res["train_macs"] = train_macs(model, folder, TRAIN_BATCH)
        res["profile"][name] = op_profile(model, batches[name][-1], args.threads)
        sides = start_sides(build, folder, args.threads, args.omp_wait_policy)
        res["eager_blas_default"] = eager_default_blas_threads(sides["eager"])
        try:
            for b in batches[name]:
                log(f"{name}: forward, batch {b}")
                res["forward"].append({"model": name, "batch": b,
                                       **interleaved(sides, f"forward {b}", rounds, target)})
            if name == TRAIN_MODEL:
                log(f"{name}: CoDi training step, batch {TRAIN_BATCH}")
                res["train"] = interleaved(sides, f"train {TRAIN_BATCH}", rounds, 1)
                log(f"SGEMM {res['sgemm_size']} and convolution peak")
                res["sgemm"] = sgemm_figures(sides, res["sgemm_size"], res["sgemm_reps"])
        finally:
            close_sides(sides)
    # the allocator's share: the largest forward of each model, and the training step
    for name, _, folder in MODELS:
        if args.quick and name != TRAIN_MODEL:
            continue
        sides = start_sides(build, folder, args.threads, args.omp_wait_policy, ALLOCATOR_SIDES)
        try:
            b = batches[name][-1]
            log(f"{name}: allocator variants, forward batch {b}")
            res["allocator"].append({"what": f"{name} forward, batch {b}",
                                     **interleaved(sides, f"forward {b}", rounds, target)})
            if name == TRAIN_MODEL and not args.quick:
                log(f"{name}: allocator variants, CoDi training step")
                res["allocator"].append({"what": f"{name} CoDi step, batch {TRAIN_BATCH}",
                                         **interleaved(sides, f"train {TRAIN_BATCH}", rounds, 1)})
        finally:
            close_sides(sides)
    text = markdown(res)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    else:
        print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


def log(msg):
    print(f"speed: {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
