"""The models by name, without importing torch to name them: what `--model` offers, what the
benchmark matrix runs, which have a dropout layer, and how to build each (models.create_model).

    from mnist_models.core.registry import ModelSpec, list_models, register_model
    register_model("lenet", ModelSpec("mypackage.lenet:LeNet"))   # one line: the matrix, the CLI, the report
    list_models()                        # ("cnn", "mlp"): the benchmark matrix's models
    list_models(variants=True)           # and the ablation's variants (cnn_relu_first)

A model is named here once; everything else (TrainConfig's checks, the CLI's choices, the
cases, the roofline's layer costs, measured from the module when a case runs) derives from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model."""

    factory: str  # "module:attribute": the nn.Module class (or a function returning one), imported on first use
    dropout: bool = False  # it has a dropout layer, whose probability TrainConfig.dropout sets
    variant_of: str | None = None  # a variant of that model: the ablation's, left out of the matrix and --model
    switches: tuple[tuple[str, object], ...] = ()  # keyword arguments the factory is called with


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, spec: ModelSpec) -> None:
    """Name a model; a name registered twice is a mistake in the code, not the user's."""
    if name in _MODELS and _MODELS[name] != spec:
        raise ValueError(f"model {name!r} is registered already, as {_MODELS[name]}")
    _MODELS[name] = spec


def unregister_model(name: str) -> None:
    """Forget a model (a test's toy one)."""
    _MODELS.pop(name, None)


def list_models(variants: bool = False) -> tuple[str, ...]:
    """The registered names, sorted: the matrix's models, and the variants when asked."""
    return tuple(sorted(n for n, s in _MODELS.items() if variants or s.variant_of is None))


def model_spec(name: str) -> ModelSpec:
    """The spec of a registered model; UsageError naming the known ones otherwise."""
    if name not in _MODELS:
        raise UsageError(f"unknown model {name!r}; choose from {', '.join(list_models(variants=True))}")
    return _MODELS[name]


register_model("cnn", ModelSpec("mnist_models.core.models:CNN", dropout=True))
register_model("mlp", ModelSpec("mnist_models.core.models:MLP"))
register_model(  # the slower order, for the ablation
    "cnn_relu_first",
    ModelSpec("mnist_models.core.models:CNN", dropout=True, variant_of="cnn", switches=(("pool_first", False),)),
)
