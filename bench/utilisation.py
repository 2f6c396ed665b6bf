"""Utilisation: achieved GFLOP/s of the encoder forward against this CPU's peak.

    python bench/utilisation.py --model runs/ant-e5-2000
    python bench/utilisation.py --model runs/ant-e5-2000 --shapes 16x128 4x512 --threads 1 2 \\
        --ghz 2.45

FLOPs of one forward at batch x tokens are counted with
``torch.utils.flop_counter.FlopCounterMode`` on the fp32 model (matrix
products and attention; element-wise work is left out, so the figures are a
slight underestimate). The int8 model does the same multiply-adds in integer
arithmetic; its "GFLOP/s" are those fp32-equivalent operations per second.

Peak = cores x GHz x operations per cycle per core. From /proc/cpuinfo: with
AVX-512 (two 512-bit FMA units assumed) 64 fp32 FLOPs/cycle, with AVX2+FMA
(two 256-bit FMA units, as on AMD Zen 2-4 and Intel since Haswell) 32. int8
on AVX2 without VNNI (vpmaddubsw + vpmaddwd, two multiply pipes) does about
twice the fp32 rate, 64 ops/cycle; VNNI/AMX would be more. ``--ghz`` defaults
to the clock /proc/cpuinfo reports (base; boost clocks would raise the peak).
Timings: best of ``--repeats`` forwards, precisions interleaved. On a
shared machine wall-clock GFLOP/s measure the share of the CPU the run got;
the last two columns use process CPU time instead (FLOPs per CPU-second,
times the threads): what the kernels achieve while they hold the cores
(an overestimate with several threads if they spin while waiting).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cpu_facts() -> tuple[set[str], float, str]:
    flags: set[str] = set()
    mhz, name = 0.0, "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and not mhz:
            mhz = float(value)
        elif key == "model name":
            name = value.strip()
    return flags, mhz / 1000, name


def peak_per_core(flags: set[str]) -> tuple[int, int, str]:
    """(fp32 FLOPs/cycle, int8 ops/cycle, the assumption in words)."""
    if "avx512f" in flags:
        int8 = 256 if "avx512_vnni" in flags else 128
        return (
            64,
            int8,
            "AVX-512: 2 x 512-bit FMA units" + (", VNNI" if "avx512_vnni" in flags else ""),
        )
    if "avx2" in flags and "fma" in flags:
        int8 = 128 if "avx_vnni" in flags else 64
        return (
            32,
            int8,
            "AVX2+FMA: 2 x 256-bit FMA units (fp32 32 FLOPs/cycle); int8 via "
            "vpmaddubsw+vpmaddwd ~64 ops/cycle",
        )
    return 8, 16, "SSE only (assumed 8 FLOPs/cycle)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        required=True,
        help="a naba model directory (its first task) or a HF model directory",
    )
    parser.add_argument("--shapes", nargs="*", default=["16x128", "4x512"], help="BATCHxTOKENS")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--ghz", type=float, default=0.0, help="clock for the peak (default: /proc/cpuinfo's)"
    )
    args = parser.parse_args()
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification

    from naba.infer.classifier import quantize_int8

    directory = Path(args.model)
    if (directory / "naba.json").exists():
        from naba.manifest import read_manifest

        directory = directory / next(iter(read_manifest(directory).tasks.values())).path
    fp32 = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    int8 = quantize_int8(AutoModelForSequenceClassification.from_pretrained(directory).eval())
    models = {"fp32": fp32, "int8": int8}
    flags, ghz, name = cpu_facts()
    ghz = args.ghz or ghz
    fp32_cycle, int8_cycle, assumption = peak_per_core(flags)
    print(f"CPU: {name}, {ghz:.2f} GHz; {assumption}; torch {torch.__version__}")
    print(f"model: {directory} ({sum(p.numel() for p in fp32.parameters()) / 1e6:.1f}M parameters)")
    print(
        "| shape | threads | precision | GFLOP per forward | ms (best) | GFLOP/s | peak GFLOP/s | "
        "% of peak "
        "| GFLOP/s per CPU-s x threads | % of peak on-core |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    vocab = fp32.config.vocab_size
    for shape in args.shapes:
        batch, tokens = (int(x) for x in shape.split("x"))
        generator = torch.Generator().manual_seed(0)
        inputs = {
            "input_ids": torch.randint(5, vocab, (batch, tokens), generator=generator),
            "attention_mask": torch.ones(batch, tokens, dtype=torch.long),
        }
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            fp32(**inputs)
        flops = counter.get_total_flops()
        for threads in args.threads:
            torch.set_num_threads(threads)
            best = {p: float("inf") for p in models}
            best_cpu = {p: float("inf") for p in models}
            with torch.inference_mode():
                for model in models.values():
                    model(**inputs)  # warm-up
                for _ in range(args.repeats):
                    for precision, model in models.items():
                        started, cpu = time.perf_counter(), time.process_time()
                        model(**inputs)
                        best[precision] = min(best[precision], time.perf_counter() - started)
                        best_cpu[precision] = min(best_cpu[precision], time.process_time() - cpu)
            for precision, seconds in best.items():
                per_cycle = fp32_cycle if precision == "fp32" else int8_cycle
                peak = threads * ghz * per_cycle
                rate = flops / seconds / 1e9
                # Per CPU-second: what the kernels achieve while they hold a
                # core (the machine may be shared).
                on_core = flops / best_cpu[precision] / 1e9 * threads
                print(
                    f"| {shape} | {threads} | {precision} | {flops / 1e9:.2f} | "
                    f"{1000 * seconds:.0f} | {rate:.1f} | "
                    f"{peak:.0f} | {100 * rate / peak:.0f}% | {on_core:.1f} | "
                    f"{100 * on_core / peak:.0f}% |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
