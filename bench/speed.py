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
        ms = []
        if cmd == "forward":
            gen = torch.Generator().manual_seed(1)
            inp = torch.rand(x, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"],
                             generator=gen) * 2 - 1
            for _ in range(reps):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    model(inp, 500.0)
                ms.append((time.perf_counter() - t0) * 1e3)
        elif cmd == "train":
            if trainer is None or trainer.batch != x:
                gen = torch.Generator().manual_seed(2)
                images = torch.randint(0, 256, (512, cfg["in_channels"], cfg["sample_size"],
                                                cfg["sample_size"]), dtype=torch.uint8,
                                       generator=gen)
                trainer = eager_codi.CoDiTrainer(model, model_dir, images, x)
            for _ in range(reps):
                t0 = time.perf_counter()
                trainer.step()
                ms.append((time.perf_counter() - t0) * 1e3)
        elif cmd == "sgemm":
            a, b = torch.rand(x, x), torch.rand(x, x)
            for _ in range(reps):
                t0 = time.perf_counter()
                torch.mm(a, b)
                ms.append((time.perf_counter() - t0) * 1e3)
        else:
            print(f"error unknown command {cmd}", flush=True)
            continue
        print("ms " + " ".join(f"{v:.3f}" for v in ms), flush=True)


# ---- the driver ---------------------------------------------------------------


class Side:
    """One worker process spoken to line by line."""

    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.banner = self.proc.stdout.readline().strip()
        if not self.banner.startswith("ready"):
            raise RuntimeError(f"{name} worker did not start: {self.banner!r}")

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer == "ok":
            return []
        if not answer.startswith("ms "):
            raise RuntimeError(f"{self.name}: {line!r} -> {answer!r}")
        return [float(v) for v in answer.split()[1:]]

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def start_sides(model_dir, threads):
    engine = Side("codid", ["build/tools/bench_engine", "serve", "--model", model_dir,
                            "--threads", str(threads)])
    eager = Side("eager", [sys.executable, os.path.join(HERE, "speed.py"), "--worker",
                           "--model", model_dir, "--threads", str(threads)])
    return engine, eager


def interleaved(engine, eager, command, rounds, target_ms, warm=2):
    """Per-repetition means of `command` (a 'forward N' or 'train B'), one
    sample per round and side, the sides' order alternating by round."""
    warm_ms = 0.0
    for _ in range(warm):
        warm_ms = max(engine.ask(f"{command} 1")[0], eager.ask(f"{command} 1")[0])
    reps = max(1, min(50, round(target_ms / max(warm_ms, 1e-3))))
    samples = {"codid": [], "eager": []}
    for r in range(rounds):
        for side in ((engine, eager) if r % 2 == 0 else (eager, engine)):
            samples[side.name].append(statistics.fmean(side.ask(f"{command} {reps}")))
    ratios = [c / e for c, e in zip(samples["codid"], samples["eager"])]
    return {"reps_per_round": reps, "rounds": rounds, **samples, "ratios": ratios,
            "codid_ms": statistics.median(samples["codid"]),
            "eager_ms": statistics.median(samples["eager"]),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios)}


def sgemm_figures(engine, eager, size, reps):
    """Best-of-reps SGEMM time in each process with 1 and 2 OpenBLAS threads."""
    out = {}
    for name, side in (("codid", engine), ("eager", eager)):
        for n in (1, 2):
            side.ask(f"blas_threads {n}")
            side.ask(f"sgemm {size} 1")
            out[f"{name}_blas{n}_ms"] = min(side.ask(f"sgemm {size} {reps}"))
    engine.ask("blas_threads 1")  # codid's own setting (eng_ctx_create)
    eager.ask(f"blas_threads {eager_default_blas_threads(eager)}")
    return out


def eager_default_blas_threads(eager):
    return int(eager.banner.rsplit(" ", 1)[1])


def ensure_models():
    for _, config, folder in MODELS:
        if not os.path.exists(os.path.join(ROOT, folder, "diffusion_pytorch_model.safetensors")):
            subprocess.run(["build/tools/bench_engine", "create", "--config", config, "--out",
                            folder, "--seed", "1"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def check_outputs(folder, threads):
    out = subprocess.run([sys.executable, os.path.join(HERE, "eager_unet.py"), "check",
                          "--model", folder, "--threads", str(threads)], cwd=ROOT,
                         capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()
    return float(last.split()[1]) if last.startswith("max_abs_diff") else float("nan")


def forward_macs(folder):
    model = eager_unet.load_model(os.path.join(ROOT, folder))
    cfg = model.config
    x = torch.zeros(1, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"])
    with torch.inference_mode():
        return eager_unet.count_macs([model], lambda: model(x, 500.0)), model


def train_macs(model, folder, batch):
    cfg = model.config
    images = torch.zeros(batch, cfg["in_channels"], cfg["sample_size"], cfg["sample_size"],
                         dtype=torch.uint8)
    trainer = eager_codi.CoDiTrainer(model, os.path.join(ROOT, folder), images, batch)
    return eager_unet.count_macs([model, trainer.online, trainer.ema], trainer.step)


def gflops(macs, ms):
    return 2 * macs / (ms * 1e-3) / 1e9


def markdown(res):
    lines = ["## Speed: codid engine vs PyTorch eager", ""]
    lines += [
        f"Both sides load the same safetensors file (random weights, seed 1) and run with "
        f"{res['threads']} intra-op threads; codid's eng_ctx_create sets OpenBLAS to 1 thread, "
        f"the eager side leaves OpenBLAS at its default ({res['eager_blas_default']}). "
        f"Times are medians over {res['rounds']} interleaved rounds (each round the mean of "
        f"several repetitions); the ratio is the median of the per-round ratios codid/eager "
        f"(range in brackets). Goals: forward <= 0.9, training step <= 1.0.", ""]
    lines += ["### Same outputs", "", "| model | max abs diff eager vs `codid forward` |",
              "|---|---|"]
    for name, diff in res["check"].items():
        lines.append(f"| {name} | {diff:.2g} |")
    lines += ["", "### Forward (one UNet evaluation)", "",
              "| model | params | batch | codid ms | eager ms | codid/eager | codid GFLOP/s | "
              "eager GFLOP/s |", "|---|---|---|---|---|---|---|---|"]
    for f in res["forward"]:
        m = res["models"][f["model"]]
        macs = m["macs"]["forward"] * f["batch"]
        lines.append(
            f"| {f['model']} | {m['params'] / 1e6:.2f}M | {f['batch']} | {f['codid_ms']:.1f} | "
            f"{f['eager_ms']:.1f} | **{f['ratio']:.2f}** [{f['ratio_min']:.2f}-{f['ratio_max']:.2f}] "
            f"| {gflops(macs, f['codid_ms']):.1f} | {gflops(macs, f['eager_ms']):.1f} |")
    t = res["train"]
    tm = res["train_macs"]
    lines += ["", "### One CoDi training step", "",
              f"{TRAIN_MODEL}, batch {TRAIN_BATCH}, controlnet adapter, sr x4 "
              f"(eng_trainer_step of a `distill` trainer vs bench/eager_codi.py: the same math "
              f"with torch.optim.AdamW, clip_grad_norm_, an EMA loop). "
              f"MACs counted per step: {tm['forward'] / 1e9:.1f} G forward + "
              f"{tm['backward'] / 1e9:.1f} G backward.", "",
              "| codid ms | eager ms | codid/eager | codid GFLOP/s | eager GFLOP/s |",
              "|---|---|---|---|---|",
              f"| {t['codid_ms']:.0f} | {t['eager_ms']:.0f} | **{t['ratio']:.2f}** "
              f"[{t['ratio_min']:.2f}-{t['ratio_max']:.2f}] | "
              f"{gflops(tm['forward'] + tm['backward'], t['codid_ms']):.1f} | "
              f"{gflops(tm['forward'] + tm['backward'], t['eager_ms']):.1f} |"]
    s = res["sgemm"]
    n = res["sgemm_size"]
    lines += ["", "### Arithmetic limit", "",
              "MACs per image of one forward, counted from the architecture (convolutions, "
              "linear layers, the two attention matmuls; norms and activations not counted):", "",
              "| model | conv | linear | attention | total GMAC |", "|---|---|---|---|---|"]
    for name, m in res["models"].items():
        c = m["macs"]
        lines.append(f"| {name} | {c['conv'] / 1e6:.1f}M | {c['linear'] / 1e6:.1f}M | "
                     f"{c['attention'] / 1e6:.1f}M | {c['forward'] / 1e9:.3f} |")
    lines += ["", f"Peak reference: a {n}x{n}x{n} SGEMM (best of {res['sgemm_reps']}) through "
              f"OpenBLAS in each worker process, {res['threads']} torch threads:", "",
              "| process | OpenBLAS 1 thread | OpenBLAS 2 threads |", "|---|---|---|"]
    for side in ("codid", "eager"):
        lines.append(f"| {side} | {gflops(n ** 3, s[f'{side}_blas1_ms']):.1f} GFLOP/s | "
                     f"{gflops(n ** 3, s[f'{side}_blas2_ms']):.1f} GFLOP/s |")
    lines.append("")
    return "\n".join(lines)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches and rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="append the markdown section to this file")
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.model, args.threads)
        return 0

    os.chdir(ROOT)
    ensure_models()
    rounds = 3 if args.quick else 7
    batches = {"cifar10-base": [1, 8, 32], "ddpm-cifar10-32": [1, 8] if args.quick else [1, 8, 32]}
    res = {"threads": args.threads, "rounds": rounds, "check": {}, "models": {}, "forward": [],
           "sgemm_size": 2048, "sgemm_reps": 3 if args.quick else 5}
    for name, _, folder in MODELS:
        print(f"speed: {name}: checking outputs", file=sys.stderr)
        res["check"][name] = check_outputs(folder, args.threads)
        macs, model = forward_macs(folder)
        res["models"][name] = {"macs": macs, "params": sum(p.numel() for p in model.parameters())}
        if name == TRAIN_MODEL:
            res["train_macs"] = train_macs(model, folder, TRAIN_BATCH)
        engine, eager = start_sides(folder, args.threads)
        res["eager_blas_default"] = eager_default_blas_threads(eager)
        try:
            for b in batches[name]:
                print(f"speed: {name}: forward batch {b}", file=sys.stderr)
                r = interleaved(engine, eager, f"forward {b}", rounds, 1500 if args.quick else 3000)
                res["forward"].append({"model": name, "batch": b, **r})
            if name == TRAIN_MODEL:
                print(f"speed: {name}: CoDi training step, batch {TRAIN_BATCH}", file=sys.stderr)
                res["train"] = interleaved(engine, eager, f"train {TRAIN_BATCH}", rounds, 1)
                print(f"speed: SGEMM {res['sgemm_size']}", file=sys.stderr)
                res["sgemm"] = sgemm_figures(engine, eager, res["sgemm_size"], res["sgemm_reps"])
        finally:
            engine.close()
            eager.close()
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
