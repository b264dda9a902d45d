import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnist_models.core.models import (
    count_params,
    create_model,
    list_models,
    macs_per_sample,
    summarize,
    training_macs_per_sample,
)


def test_registry_lists_both_models_and_the_variant_apart():
    assert list_models() == ("cnn", "mlp")
    assert list_models(variants=True) == ("cnn", "cnn_relu_first", "mlp")
    assert create_model("cnn_relu_first").pool_first is False and create_model("cnn").pool_first is True


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose from cnn, cnn_relu_first, mlp"):
        create_model("resnet")


@pytest.mark.parametrize("name", list_models())
def test_output_is_logits_for_each_image(name):
    out = create_model(name)(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10) and out.dtype == torch.float32


def test_parameter_counts():
    assert count_params(create_model("mlp")) == 784 * 128 + 128 + 128 * 10 + 10
    conv = (1 * 9 + 1) * 16 + (16 * 9 + 1) * 32
    assert count_params(create_model("cnn")) == conv + (32 * 7 * 7 + 1) * 128 + 129 * 10


@pytest.mark.parametrize("name,convs,linears", [("mlp", 0, 2), ("cnn", 2, 2)])
def test_layer_counts_match_the_notebook(name, convs, linears):
    kinds = [type(m) for m in create_model(name).modules()]
    assert kinds.count(nn.Conv2d) == convs and kinds.count(nn.Linear) == linears


def test_summary_shapes_params_and_macs():
    rows = {r.name: r for r in summarize(create_model("cnn"))}
    assert rows["conv1"].output_shape == (16, 28, 28) and rows["conv1"].macs == 28 * 28 * 16 * 9
    assert rows["pool2"].output_shape == (32, 7, 7) and rows["pool2"].params == 0
    assert rows["fc1"].macs == 1568 * 128
    assert macs_per_sample(create_model("mlp")) == 784 * 128 + 128 * 10
    assert sum(r.params for r in rows.values()) == count_params(create_model("cnn"))


@pytest.mark.parametrize("name", list_models())
def test_training_macs_are_what_autograd_computes(name):
    """The benchmark's FLOP count of a training step, against torch's own FLOP counter."""
    model = create_model(name)
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    assert counter.get_total_flops() == 2 * training_macs_per_sample(model) * 4
    assert training_macs_per_sample(model) < 3 * macs_per_sample(model)  # the images need no gradient


def test_pooling_before_relu_changes_no_number():
    torch.manual_seed(0)
    fast = create_model("cnn")
    slow = create_model("cnn", pool_first=False)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(16, 1, 28, 28)
    assert torch.equal(fast.eval()(x), slow.eval()(x))


def test_summary_leaves_training_mode_alone():
    model = create_model("cnn").train()
    summarize(model)
    assert model.training
