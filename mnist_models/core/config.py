"""What a training run is: the choices, TrainConfig and its checks. No torch here, so the
command line can parse, check and refuse arguments without importing it.

    from mnist_models.core.config import TrainConfig
    TrainConfig(model="cnn", epochs=0)     # UsageError naming the bad field: a config that exists is sound

A TrainConfig is checked once, when it is made (dataclasses.replace makes a new one,
checked in turn), so no caller checks it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError
from .registry import list_models, model_spec

PRECISIONS = ("fp32", "bf16")  # fp32, or bf16 autocast
NOTEBOOK = "notebook"  # the notebook's DataLoader loop: its name in --loader, case ids and result files
LOADERS = ("resident", NOTEBOOK)  # tensors on the device, or the notebook's DataLoader
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "onecycle")
DEVICES = ("auto", "cpu", "accel", "cuda", "mps", "xpu")  # auto: the accelerator if any; accel: it, or an error
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000  # MNIST's splits
EVAL_BATCH = 2000  # images per evaluation batch


@dataclass(frozen=True)
class TrainConfig:
    model: str = "cnn"  # registry name (registry.list_models): cnn | mlp
    epochs: int = 10  # passes over the training set
    batch_size: int = 64  # training batch size (the notebook's 64)
    lr: float = 1e-3  # peak learning rate
    optimizer: str = "adam"  # adam | sgd (Nesterov, momentum 0.9)
    schedule: str = "constant"  # constant | onecycle (per-batch OneCycleLR of the lr, betas fixed)
    cycle_epochs: float | None = None  # onecycle: the epochs its lr rises and falls over (None: all of
    #                                    them); after it, the lr stays where the cycle left it
    label_smoothing: float = 0.0  # the training loss's (PyTorch's cross_entropy label_smoothing)
    dropout: float | None = None  # the CNN's dropout probability (None: the model's own)
    seed: int = 0  # seeds the weights, dropout and the batch order
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    loader: str = "resident"  # resident (tensors on the device) | notebook (NOTEBOOK: its DataLoader)
    channels_last: bool = True  # NHWC memory format for conv layers
    fused: bool = True  # fused optimizer step (one kernel for all parameters)
    compile: bool = False  # torch.compile the model (inductor)
    bf16_weights: bool = False  # inference in bf16 only: weights and images cast to bf16, no autocast
    #                             (training keeps fp32 weights, the optimizer's master copy, under autocast)
    cuda_graphs: bool = False  # cuda only: replay one captured training step per full batch (adam)
    train_samples: int | None = None  # first N training images (None: all 60,000)
    test_samples: int | None = None  # first N test images (None: all 10,000)
    val_samples: int = 0  # held out of the training images for validation
    eval_batch_size: int = EVAL_BATCH  # batch size for evaluation
    eval_every: float = 1.0  # time to accuracy: epochs between test evaluations (0.1: ten an epoch)
    eval_from: float | None = None  # time to accuracy: the first evaluation, in epochs (None: eval_every)
    root: str | None = None  # dataset root (None: $MNIST_ROOT or ./datasets)

    def __post_init__(self) -> None:
        check_config(self)

    @property
    def training_images(self) -> int:
        """Images an epoch trains on: the first train_samples, less the validation split."""
        return (self.train_samples or TRAIN_SIZE) - self.val_samples


def _choice(value, choices: tuple[str, ...], what: str) -> tuple[bool, str, object]:
    return value in choices, f"{what} must be one of {', '.join(choices)}", value


def check_config(cfg: TrainConfig) -> None:
    """Raise UsageError naming the first field that is out of range, before any work."""
    samples = cfg.train_samples
    checks = [
        _choice(cfg.model, list_models(variants=True), "model"),
        _choice(cfg.precision, PRECISIONS, "precision"),
        _choice(cfg.loader, LOADERS, "loader"),
        _choice(cfg.optimizer, OPTIMIZERS, "optimizer"),
        _choice(cfg.schedule, SCHEDULES, "schedule"),
        _choice(cfg.device, DEVICES, "device"),
        (cfg.epochs >= 1, "epochs must be at least 1", cfg.epochs),
        (cfg.batch_size >= 1, "batch size must be at least 1", cfg.batch_size),
        (math.isfinite(cfg.lr) and cfg.lr > 0, "learning rate must be a positive number", cfg.lr),
        (
            samples is None or 1 <= samples <= TRAIN_SIZE,
            f"train samples must be between 1 and MNIST's {TRAIN_SIZE:,} training images",
            samples,
        ),
        (
            cfg.test_samples is None or 1 <= cfg.test_samples <= TEST_SIZE,
            f"test samples must be between 1 and MNIST's {TEST_SIZE:,} test images",
            cfg.test_samples,
        ),
        (cfg.val_samples >= 0, "validation samples must be 0 or more", cfg.val_samples),
        (
            cfg.val_samples == 0 or cfg.loader == "resident",
            "validation samples need the resident loader (the notebook's loader has no validation "
            "split); drop --val-samples or use --loader resident",
            cfg.val_samples,
        ),
        (
            cfg.val_samples < (samples or TRAIN_SIZE),
            "validation samples must leave training images; lower --val-samples",
            cfg.val_samples,
        ),
        (
            cfg.batch_size <= cfg.training_images,
            f"batch size is larger than the {cfg.training_images:,} training images; "
            f"choose at most {cfg.training_images}",
            cfg.batch_size,
        ),
        (
            cfg.cycle_epochs is None or cfg.schedule == "onecycle",
            "cycle epochs need the onecycle schedule; add --schedule onecycle",
            cfg.cycle_epochs,
        ),
        (
            cfg.cycle_epochs is None or 0 < cfg.cycle_epochs <= cfg.epochs,
            f"cycle epochs must be more than 0 and at most the {cfg.epochs} epochs",
            cfg.cycle_epochs,
        ),
        (
            math.isfinite(cfg.label_smoothing) and 0 <= cfg.label_smoothing < 1,
            "label smoothing must be at least 0 and below 1",
            cfg.label_smoothing,
        ),
        (
            cfg.dropout is None or model_spec(cfg.model).dropout,
            f"the {cfg.model} has no dropout layer; drop --dropout",
            cfg.dropout,
        ),
        (cfg.dropout is None or 0 <= cfg.dropout < 1, "dropout must be at least 0 and below 1", cfg.dropout),
        (cfg.eval_batch_size >= 1, "evaluation batch size must be at least 1", cfg.eval_batch_size),
        (
            math.isfinite(cfg.eval_every) and cfg.eval_every >= 0.01,
            "evaluations must be at least 0.01 epochs apart",
            cfg.eval_every,
        ),
        (
            cfg.eval_from is None or 0 < cfg.eval_from <= cfg.epochs,
            f"the first evaluation must come after some training and within the {cfg.epochs} epochs",
            cfg.eval_from,
        ),
        (
            not cfg.cuda_graphs or cfg.optimizer == "adam",
            "cuda graphs work with the adam optimizer only",
            cfg.optimizer,
        ),
        (not cfg.bf16_weights or cfg.precision == "bf16", "bf16 weights need precision bf16", cfg.precision),
    ]
    for ok, message, value in checks:
        if not ok:
            raise UsageError(f"{message} (got {value!r})")
