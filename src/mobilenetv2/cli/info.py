"""``mobilenetv2 info``: the paper's architecture table with parameters, multiply-adds and memory."""

from __future__ import annotations

import argparse

from mobilenetv2.cli.common import add_model_args, model_kwargs, print_json
from mobilenetv2.reporting import format_table

DEFAULT_RESOLUTION = 224
BOARDS = ((256, 1024), (512, 1024))  # (SRAM KiB, flash KiB) of the microcontroller classes the README's table names


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="per-layer table, parameters, multiply-adds, size and memory of a model",
                       description="Print the paper's per-layer table (input, operator, t, c, n, s) with parameters, "
                                   "multiply-adds and output size per layer, and the totals.")
    add_model_args(p)
    p.set_defaults(resolution=None)  # None: the checkpoint's input size, or 224 for --model
    p.add_argument("--checkpoint", help="describe the model stored in this checkpoint instead of --model, "
                                        "at the checkpoint's input size unless --resolution is given")
    p.add_argument("--blocks", action="store_true", help="one row per block instead of one per paper row")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--list", action="store_true", help="list the model names and exit")
    p.add_argument("--tflite", metavar="FILE", help="what a microcontroller needs for this .tflite file: the tensor arena "
                                                   "TensorFlow Lite Micro allocates (SRAM), the file's bytes (flash), its "
                                                   "input and output, and which of 256/512 KiB SRAM with 1 MiB flash it fits")
    return p


def tflite_info(path: str, as_json: bool) -> int:
    """The file opened under TensorFlow Lite Micro: its arena and flash bytes against common boards."""
    from mobilenetv2.formats import open_runtime

    described = open_runtime(path, "tflm").describe()
    arena, flash = described["arena_bytes"], described["flash_bytes"]
    described["fits"] = {f"{sram} KiB SRAM, {rom} KiB flash": arena <= sram * 1024 and flash <= rom * 1024
                         for sram, rom in BOARDS}
    if as_json:
        print_json(described)
        return 0
    shape = "x".join(str(d) for d in described["input"]["shape"])
    print(f"{path}: {described['precision']} {described['task']} model, input {described['input']['layout']} "
          f"{described['input']['dtype']} {shape}, output: {described['outputs']}")
    print(f"TFLM tensor arena (SRAM): {arena:,} bytes ({arena / 1024:.1f} KiB)")
    print(f"flash (the file):         {flash:,} bytes ({flash / 1024:.1f} KiB)")
    for board, fits in described["fits"].items():
        print(f"fits {board}: {'yes' if fits else 'no'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.tflite:  # a file under TFLM: no torch
        return tflite_info(args.tflite, args.json)
    from mobilenetv2.analysis import profile
    from mobilenetv2.models import create_model, list_models

    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.checkpoint:
        from mobilenetv2.weights import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model, resolution, resolution_from = ckpt.model, ckpt.preprocessing.input_size, "the checkpoint's input size"
    else:
        model = create_model(args.model, **model_kwargs(args))
        resolution, resolution_from = getattr(model, "default_input_size", DEFAULT_RESOLUTION), "default"
    if args.resolution is not None:
        resolution, resolution_from = args.resolution, "--resolution"
    prof = profile(model, resolution)
    if args.json:
        print_json({**prof.to_dict(), "resolution_from": resolution_from})
        return 0
    arch = ", ".join(f"{k}={v}" for k, v in model.arch["args"].items())
    print(f"{model.arch['name']}({arch}) at {resolution}x{resolution} ({resolution_from})\n")
    rows = prof.blocks if args.blocks else prof.rows
    print(format_table(
        ["layer", "input", "operator", "t", "c", "n", "s", "params", "MACs", "output"],
        [[r.name, r.input, r.operator, r.t, r.c, r.n, r.s, f"{r.params:,}", f"{r.macs:,}", r.output] for r in rows],
    ))
    print(f"\nparameters:            {prof.params:,} ({prof.params_without_bn:,} without BatchNorm)")
    print(f"multiply-adds:         {prof.macs:,} ({prof.macs / 1e6:.1f}M)")
    print(f"model size:            {prof.size_fp32_mb:.2f} MB fp32, {prof.size_int8_mb:.2f} MB int8")
    print("\nactivation memory (16-bit), per spatial resolution:")
    print_memory(prof.activation_memory, prof.streamed_memory)
    return 0


def print_memory(kept: list[dict], streamed: dict) -> None:
    """Today's accounting (tensors between blocks, naive layer peak) beside the paper's streamed one (section 5.1)."""
    today = {m["resolution"]: m for m in kept}
    paper = {m["resolution"]: m for m in streamed["per_resolution"]}
    print(format_table(
        ["resolution", "max channels kept", "kept (KB)", "naive peak of one layer (KB)", "streamed: max channels",
         "streamed: largest (KB)"],
        [[r, *([today[r]["max_channels"], today[r]["kept_kb"], today[r]["naive_peak_kb"]] if r in today else ["", "", ""]),
          *([paper[r]["max_channels"], paper[r]["kb"]] if r in paper else ["", ""])] for r in {**today, **paper}],
    ))
    print(f"peak kept: {max(m['kept_kb'] for m in kept):.1f} KB")
    print(f"streamed as the paper's section 5.1 (each bottleneck's expansion one channel at a time; {streamed['scope']}):")
    print(f"  largest tensor {streamed['largest_kb']:.1f} KB ({streamed['largest_tensor']}: the measure of the paper's Table 3; "
          f"{streamed['largest_int8_kb']:.1f} KB with int8 activations)")
    print(f"  peak held at once {streamed['peak_kb']:.1f} KB ({streamed['peak_step']}; "
          f"{streamed['peak_int8_kb']:.1f} KB with int8 activations)")
    print(f"without the split, each conv's output whole (BN and activations fused): the largest conv's input + output "
          f"{streamed['whole_op_kb']:.1f} KB ({streamed['whole_op']}; {streamed['whole_op_int8_kb']:.1f} KB with int8)")
