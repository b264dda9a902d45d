import pytest
import torch

from mnist_models.core.inspection import Predictions, activations, confusion_matrix, misclassified
from mnist_models.core.models import create_model, leaf_layers

SHAPES = {
    "mlp": {"fc1": (128,), "act1": (128,), "fc2": (10,)},
    "cnn": {
        "conv1": (16, 28, 28),
        "pool1": (16, 14, 14),
        "act1": (16, 14, 14),
        "conv2": (32, 14, 14),
        "pool2": (32, 7, 7),
        "act2": (32, 7, 7),
        "fc1": (128,),
        "act3": (128,),
        "dropout": (128,),
        "fc2": (10,),
    },
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_named_layer_has_its_activation_shape(name, test_split):
    model = create_model(name)
    acts = activations(model, test_split.x[:4])
    assert list(acts) == leaf_layers(model) == list(SHAPES[name])
    assert {k: tuple(v.shape[1:]) for k, v in acts.items()} == SHAPES[name]
    assert all(v.shape[0] == 4 for v in acts.values())
    assert (acts.get("act1") >= 0).all()  # after ReLU
    assert model.training  # restored


def test_unknown_layer_is_named():
    with pytest.raises(ValueError, match="unknown layers \\['conv9'\\]"):
        activations(create_model("cnn"), torch.zeros(1, 1, 28, 28), ["conv9"])


def test_misclassified_are_wrong_and_most_confident_first():
    preds = Predictions(
        labels=torch.tensor([0, 1, 2, 3, 4]),
        predicted=torch.tensor([0, 7, 2, 5, 9]),
        confidence=torch.tensor([0.9, 0.6, 0.8, 0.95, 0.7]),
    )
    assert misclassified(preds).tolist() == [3, 4, 1]
    assert misclassified(preds, limit=1).tolist() == [3]
    cm = confusion_matrix(preds)
    assert cm.sum() == 5 and cm[1, 7] == 1 and cm[0, 0] == 1
