"""What a result file holds, declared once: the operations a case can time, and every field
of an entry, of the run and of the machine. Validation (schema.py), the results frame's
columns (results.py), the upgrade of older files and the field table of results/FORMAT.md
(`mnist-bench docs`) all read these declarations; nothing else spells a field out.

    from mnist_models.reporting.fields import ENTRY, OPERATIONS, field_table
    [f.name for f in ENTRY if f.column]        # the frame's figure columns
    print(field_table())                       # the format reference's table

An operation named in OPERATIONS is kept on reading, drawn in the report (its own table
where tables.py has one, else the generic one) and counted by the score where `scored`.
No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FORMAT = 5  # machine_info.mnist_bench.format of what the suite writes now
SHORTEST = 1e-9  # seconds: no round of a case is quicker; below it, images/s would overflow to inf


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**53


# what a field's value must be: (test, what the message says it expected)
KINDS = {
    "name": (lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a non-empty name"),
    "count": (_is_count, "a positive whole number"),
    "number": (lambda v: v is None or _is_number(v), "a number"),
    "fraction": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1), "a number from 0 to 1"),
    "bools": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(x, bool) for x in v)),
        "a list of true/false",
    ),
    "counts": (
        lambda v: v is None or (isinstance(v, list) and all(_is_count(x) for x in v)),
        "a list of positive whole numbers",
    ),
    "positives": (
        lambda v: v is None or (isinstance(v, list) and all(_is_number(x) and x > 0 for x in v)),
        "a list of positive numbers",
    ),
    "fractions": (
        lambda v: v is None or (isinstance(v, list) and all(_is_number(x) and 0 <= x <= 1 for x in v)),
        "a list of numbers from 0 to 1",
    ),
    "flag": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "text": (lambda v: v is None or (isinstance(v, str) and len(v) <= 200), "a name or nothing"),
    "object": (lambda v: v is None or isinstance(v, dict), "an object"),
}


@dataclass(frozen=True)
class Field:
    """One field of a result file."""

    name: str
    kind: str  # a key of KINDS: what a value must be
    doc: str  # its meaning, one line of the format reference
    required: bool = False  # an entry without it is dropped, named
    column: bool = False  # a column of the results frame
    key: object = None  # part of a case's identity; the value the frame gives an entry without it (non-ddp cases)
    operations: tuple[str, ...] = ()  # recorded by these operations only (empty: by every one)
    since: int = 1  # the format that first wrote it (older files: absent, or filled by the upgrade)


NOT_KEY = None  # Field.key for fields that are not part of a case's identity
_ANY = object()  # Field.key for key fields every entry has


def _f(name, kind, doc, **kw) -> Field:
    return Field(name, kind, doc, **kw)


# extra_info: every axis and derived figure of one case
ENTRY = (
    _f("model", "name", "the model's registry name (`mnist-bench models`)", required=True, key=_ANY),
    _f("device", "name", "`cpu`, or the accelerator's type (`cuda`, `mps`, `xpu`)", required=True, key=_ANY),
    _f("operation", "name", "what a round times: a name in the operations table", required=True, key=_ANY),
    _f("batch_size", "count", "images per step", required=True, key=_ANY),
    _f(
        "loader",
        "name",
        "`resident`: each split one normalized tensor on the device, batches cut by a seeded randperm; "
        "`notebook`: the notebook's `DataLoader(MNIST(transform=ToTensor()))` (`seed` before format 4)",
        required=True,
        key=_ANY,
    ),
    _f(
        "variant",
        "name",
        "`tuned`: the fastest path measured for the device class (channels_last, a fused optimizer, bf16 "
        "weights for bf16 inference, and on a CPU with AMX the CNN's inference compiled); `plain`: torch's "
        "defaults; `graphs`: tuned with the training step replayed as a CUDA graph; `compiled`: tuned under "
        "torch.compile",
        required=True,
        key=_ANY,
    ),
    _f("precision", "name", "`fp32`, or `bf16` (training autocasts over fp32 weights)", required=True, key=_ANY),
    _f(
        "samples",
        "count",
        "images one round processes: the case's workload (60,000 train, 10,000 infer; 4,096 / 2,048 with --quick)",
        required=True,
        column=True,
    ),
    _f(
        "workload",
        "text",
        "a hash of everything the case times (its config, model, loader, tuned path and images a round); "
        "two entries are the same work only where it agrees",
        column=True,
        since=4,
    ),
    _f("dtype", "text", "what the case computes in: `float32`, `bfloat16 autocast` or `bfloat16 weights`", column=True),
    _f("native", "flag", "false for bf16 on a device without bf16 arithmetic (emulated)", column=True),
    _f("compiled", "flag", "whether the case ran under torch.compile", column=True),
    _f(
        "flops_3x",
        "flag",
        "set on reading: a file made before `flops_per_sample`, whose training FLOPs were 3x the forward pass",
        column=True,
    ),
    _f("channels_last", "flag", "whether the convs ran in the NHWC memory format"),
    _f("fused", "flag", "whether the optimizer step was one fused kernel"),
    _f("samples_per_second", "number", "`samples / median`", column=True),
    _f(
        "flops_per_sample",
        "number",
        "FLOPs of one image's pass: 2 x MACs for inference; for training 2 x (forward, every weight "
        "gradient, every input gradient but the first layer's)",
        column=True,
    ),
    _f("gflops", "number", "achieved GFLOP/s: `flops_per_sample x samples / median`", column=True),
    _f("params", "number", "trainable parameters", column=True),
    _f("macs_per_sample", "number", "multiply-accumulates of one forward pass of one image", column=True),
    _f("peak_rss_mb", "number", "the process's peak resident memory so far", column=True),
    _f("torch_threads", "number", "`torch.get_num_threads()` during the case", column=True),
    _f(
        "device_peak_memory_mb",
        "number",
        "accelerators only: peak memory held by tensors (`cuda_peak_memory_mb` before format 2)",
        column=True,
    ),
    _f("device_peak_memory_note", "text", "why `device_peak_memory_mb` is null, where it is"),
    _f("cold_seconds", "number", "the first round, timed apart and not in `stats`", column=True),
    _f(
        "pass_rounds",
        "count",
        "`run --score`: the rounds the case ran back to back each pass, whose mean is that pass's round in "
        "`stats` (format 4's passes: one)",
        since=5,
    ),
    _f(
        "compile_seconds",
        "number",
        "compiled cases: the cold round's seconds less a timed round's, mostly the compile",
        column=True,
    ),
    _f(
        "harness_overhead_fraction",
        "number",
        "(pytest-benchmark's round time - the target's own synchronized time) / round time",
        column=True,
    ),
    _f("final_loss", "number", "the last timed epoch's mean training loss", column=True, operations=("train", "ddp")),
    _f("test_accuracy", "fraction", "test accuracy after the timed epochs", column=True, operations=("train", "ddp")),
    _f("target_accuracy", "fraction", "the test accuracy that stops the clock", column=True, operations=("tta",)),
    _f("seeds", "number", "seeds run, one a round", operations=("tta",)),
    _f("reached", "bools", "per seed: whether it reached the target", column=True, operations=("tta",)),
    _f(
        "epochs_to_target",
        "positives",
        "per seed: epochs trained when it stopped (fractional: evaluated within an epoch)",
        column=True,
        operations=("tta",),
    ),
    _f("accuracy_at_stop", "fractions", "per seed: the test accuracy where it stopped", operations=("tta",)),
    _f(
        "recipe",
        "object",
        "the time to accuracy's training recipe (epochs, batch, lr, schedule, cycle, label smoothing, "
        "dropout, precision, evaluation cadence); another recipe is another workload",
        operations=("tta",),
    ),
    _f("world_size", "number", "ranks", key=1, operations=("ddp",)),
    _f(
        "scaling_efficiency",
        "number",
        "images/s over ranks x the one-rank case's of the same family (computed on reading; older files wrote it)",
        operations=("ddp",),
    ),
    _f(
        "scaling",
        "text",
        "`strong` (the global batch split) or `weak` (each rank's batch fixed)",
        key="",
        operations=("ddp",),
    ),
    _f("threads_per_rank", "number", "torch threads a rank", key=0, operations=("ddp",)),
    _f("backend", "text", "gloo or nccl", operations=("ddp",)),
    _f("global_batch", "number", "images per step across the ranks", column=True, operations=("ddp",)),
    _f("per_rank_batch", "number", "images per step on each rank", column=True, operations=("ddp",)),
    _f(
        "allreduce_share",
        "fraction",
        "steps x one isolated all-reduce of the gradient over the epoch: an upper bound of the communication",
        column=True,
        operations=("ddp",),
    ),
    _f(
        "instructions",
        "number",
        "`mnist-bench ab` only: instructions callgrind counted over `instruction_steps` steps",
        column=True,
    ),
    _f("instructions_per_step", "number", "`instructions / instruction_steps`; compare judges it at 1%", column=True),
    _f("instruction_steps", "number", "training steps (or inference batches) counted", column=True),
)

# the top level's `mnist_bench`: the run's own facts, measured anew each run
RUN = (
    _f("format", "count", "the shape of the file (this reference describes format 4)"),
    _f(
        "workload_version",
        "count",
        "the version of the workload the run timed; files of different versions are never ranked together",
        since=4,
    ),
    _f(
        "workload_fingerprint",
        "text",
        "a hash of every case's definition on every device class, for that version",
        since=4,
    ),
    _f("quick", "flag", "`--quick`: a few thousand images and one round a case"),
    _f("rounds", "number", "timed rounds a case"),
    _f(
        "passes",
        "number",
        "`run --score`: interleaved passes over the score's cases, a block of rounds each (`pass_rounds`)",
        since=4,
    ),
    _f(
        "stopped",
        "text",
        "`run --score`: why it added no more passes (the interval narrow enough, or its budget)",
        since=4,
    ),
    _f("partial", "flag", "the cases finished before a stop, kept"),
    _f("peak_gflops", "object", "best GFLOP/s of square matmuls per device and precision (`cpu_fp32`, ...)"),
    _f("peak_probe_size", "object", "the matrix size the matmul probe settled on"),
    _f("bandwidth_gbs", "object", "best GB/s of a STREAM triad per device"),
    _f("busy", "object", "how quiet the machine was: load average, steal and other processes' share"),
    _f(
        "trajectory",
        "object",
        "the machine's speed through the run: a fixed sentinel timed between cases ({t, speed} pairs)",
        since=4,
    ),
    _f("models", "object", "each model's leaf layers as the run measured them (the roofline's costs)", since=4),
    _f("ab", "object", "files written by `mnist-bench ab`: the side, its code, threads, pairs and workers"),
)

# machine_info.mnist_bench: the machine's facts, the same from run to run
MACHINE = (
    _f("format", "count", "the shape of the file, which the upgrade reads (the run's mnist_bench repeats it)"),
    _f("label", "text", "`--machine-label`, default the hostname: the machine's name in the report"),
    _f("cpu_model", "text", "the CPU's brand string (py-cpuinfo)"),
    _f("cpu_vendor", "text", "GenuineIntel, AuthenticAMD, ..."),
    _f("cpu_family", "number", "the CPU family"),
    _f("cpu_model_number", "number", "the CPU model number"),
    _f("cpu_stepping", "number", "the CPU stepping"),
    _f("cpu_capability", "text", "`torch.backends.cpu.get_cpu_capability()`: the vector ISA torch's kernels use"),
    _f("cpu_flags", "object", "the flags machines differ by (avx2 ... amx_bf16, neon, sve, bf16)"),
    _f("cpu_bf16_native", "flag", "bf16 arithmetic in hardware: AVX512-BF16, AMX-BF16 or Arm BF16"),
    _f("cpu_caches", "object", "per-core cache sizes (L3 shared)"),
    _f("physical_cores", "number", "physical cores"),
    _f("logical_cores", "number", "logical cores (vCPUs)"),
    _f("ram_gb", "number", "memory"),
    _f("os", "text", "the operating system and kernel"),
    _f("python", "text", "the Python version"),
    _f("torch", "text", "the torch version"),
    _f("torchvision", "text", "the torchvision version"),
    _f("cuda", "text", "the CUDA runtime, with a cuda accelerator"),
    _f("cudnn", "number", "the cuDNN version, with a cuda accelerator"),
    _f(
        "accelerator",
        "text",
        "with an accelerator: its type; `accelerator_name`, `_count`, `_memory_gb`, `_runtime`, `_driver`, "
        "`_capability`, `_bf16_native`, `_fused_optimizer` beside it (`gpu_*` before format 2)",
    ),
    _f("torch_threads", "number", "intra-op threads"),
    _f("omp_num_threads", "text", "`$OMP_NUM_THREADS`"),
    _f("threads_over_cores", "flag", "more threads than cores"),
    _f("malloc", "text", "what the suite did to the C allocator (its mmap and trim thresholds)"),
)

FIELDS = {"extra_info": ENTRY, "mnist_bench": RUN, "machine_info.mnist_bench": MACHINE}
KEY = [f.name for f in ENTRY if f.key is not NOT_KEY]  # a case: what two entries must share to be the same case
KEY_DEFAULTS = {f.name: f.key for f in ENTRY if f.key not in (NOT_KEY, _ANY)}  # ddp's axes, for the others
COLUMNS = [f.name for f in ENTRY if f.column]  # the frame's figures, beside the key and the statistics
MATCH = [*KEY, "samples", "recipe", "workload"]  # a case and its workload: what is compared
RUN_FACTS = tuple(f.name for f in RUN if f.name != "format")


@dataclass(frozen=True)
class Operation:
    """One kind of round a case can time, as the report and the score see it."""

    name: str
    title: str  # the report's heading
    seconds: str  # a round's time in the report's tables
    about: str  # what one round is
    scored: bool = False  # in the score's reference set (where the device runs it natively)
    per_image: bool = True  # speed is images/s (False: 1/s of a whole round, as time to accuracy)
    score_batches: tuple[int, ...] = (64, 256, 1024)  # the batches the score counts, where a round is of images
    roofline: str | None = None  # the pass the roofline costs a round as: "train" (a step) or "infer"


OPERATIONS: dict[str, Operation] = {}


def register_operation(op: Operation) -> Operation:
    """Declare an operation (the harness registers its cases and timer under the same name)."""
    OPERATIONS[op.name] = op
    return op


def unregister_operation(name: str) -> None:
    """Forget an operation (a test's toy one)."""
    OPERATIONS.pop(name, None)


register_operation(
    Operation(
        "train",
        "Training: one epoch",
        "epoch s",
        "one training epoch from a fresh model",
        scored=True,
        # one batch: a pass of every case must fit the score's three minutes three times on a
        # slow 2-vCPU VM, and the CNN's training epochs are most of a pass
        score_batches=(256,),
        roofline="train",
    )
)
register_operation(
    Operation("infer", "Inference: the test set", "pass s", "a forward pass over the test set", True, roofline="infer")
)
register_operation(
    Operation(
        "tta",
        "Time to accuracy",
        "seconds",
        "a fresh model trained until the test set first reads the target",
        scored=True,
        per_image=False,
    )
)
register_operation(
    Operation("ddp", "Data-parallel scaling", "epoch s", "one data-parallel epoch of all the images, the slowest rank")
)


def field_table() -> str:
    """The format reference's field tables, one per place in the file (markdown)."""
    parts = []
    for where, fields in FIELDS.items():
        rows = ["| field | kind | meaning |", "|---|---|---|"]
        for f in fields:
            notes = [
                *(["required"] if f.required else []),
                *([f"only {', '.join(f.operations)}"] if f.operations else []),
            ]
            notes += [f"from format {f.since}"] if f.since > 1 else []
            note = f" ({'; '.join(notes)})" if notes else ""
            rows.append(f"| `{f.name}` | {KINDS[f.kind][1]} | {f.doc.replace('|', '/')}{note} |")
        parts += [f"`{where}`:", "", *rows, ""]
    ops = ["| operation | one round | in the score |", "|---|---|---|"]
    ops += [f"| `{o.name}` | {o.about} | {'yes' if o.scored else 'no'} |" for o in OPERATIONS.values()]
    return "\n".join(["Operations:", "", *ops, "", *parts]).rstrip() + "\n"
