import pytest
import torch

from mnist_models.cli import main
from mnist_models.core.inspection import conv_layers
from mnist_models.core.models import create_model
from mnist_models.core.registry import list_models
from mnist_models.files import write_files
from mnist_models.machine.devices import accelerator
from mnist_models.study import answers
from mnist_models.study import figures as study_plots
from mnist_models.study.questions import FILES, StudyConfig, run


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory, mnist_root):
    out = tmp_path_factory.mktemp("study")
    numbers, files = run(
        StudyConfig(epochs=1, train_samples=4096, root=str(mnist_root)),
        command=f"python -m mnist_models study --epochs 1 --train-samples 4096 --out {out}",
    )
    write_files({out / name: data for name, data in files.items()})
    return out, numbers


@pytest.mark.slow
def test_every_file_is_written(quick_study):
    out, _ = quick_study
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    md = (out / "study.md").read_text()
    for q in ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7"):
        assert f"## {q}:" in md
    assert f"python -m mnist_models study --epochs 1 --train-samples 4096 --out {out}" in md
    assert "1 epoch," in md and "1 epochs" not in md
    for name in FILES[:-2]:
        if name.endswith(".png"):
            assert f"]({name})" in md, name


@pytest.mark.slow
def test_misclassified_shown_are_all_wrong_most_confident_first(quick_study):
    _, numbers = quick_study
    for model, shown in numbers["misclassified"].items():
        assert shown, model
        assert all(true != pred for true, pred, _ in shown)
        confidences = [c for _, _, c in shown]
        assert confidences == sorted(confidences, reverse=True)


def test_activation_figure_covers_every_conv_layer():
    convs = conv_layers(create_model("cnn"))
    assert convs == ["conv1", "conv2"]
    maps = {"conv1": torch.rand(2, 16, 28, 28).numpy(), "conv2": torch.rand(2, 32, 14, 14).numpy()}
    fig = study_plots.feature_maps(torch.rand(2, 28, 28).numpy(), maps, "cnn")
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert [t.split()[1].rstrip(":") for t in titles] == convs
    assert "16 channels" in titles[0] and "32 channels" in titles[1]


@pytest.mark.slow
def test_study_numbers_answer_q4_and_q7(quick_study):
    _, numbers = quick_study
    per_class = numbers["per_class"]
    assert list(per_class.index) == list(list_models()) and per_class.shape[1] == 11
    # one epoch of 4,096 images: measured 88.4% (MLP) and 90.4% (CNN), every digit above 80%
    assert per_class.loc["mlp", "overall"] >= 0.85 and per_class.loc["cnn", "overall"] >= 0.87
    assert (per_class.drop(columns="overall") >= 0.6).all().all()
    q7 = numbers["q7"]
    assert set(q7["device"]) >= {"cpu"} and (q7["median epoch s"] > 0).all()
    assert set(numbers["shapes"]["layer"]) >= {"conv1", "act2", "fc2"}


def test_study_refuses_to_overwrite(tmp_path, capsys):
    (tmp_path / "study.md").write_text("mine")
    assert main(["study", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "already holds study.md; pass --force" in capsys.readouterr().err
    assert (tmp_path / "study.md").read_text() == "mine"


def test_tensorboard_logs_or_names_the_extra(tmp_path, mnist_root, capsys):
    args = [
        "study",
        "--epochs",
        "1",
        "--train-samples",
        "1024",
        "--root",
        str(mnist_root),
        "--out",
        str(tmp_path / "study"),
        "--tensorboard",
        str(tmp_path / "tb"),
    ]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert main(args) == 2
        assert "pip install -e '.[tensorboard]'" in capsys.readouterr().err
        assert not (tmp_path / "study").exists()
        return
    assert main(args) == 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "0"], "epochs must be a positive whole number"),
        (["--train-samples", "70000"], "train samples must be between 1"),
        (["--train-samples", "10"], "raise --train-samples (got 10)"),
        (["--bench", "missing.json"], "missing.json: cannot read it"),
    ],
)
def test_study_refuses_bad_sizes_before_making_anything(tmp_path, capsys, cli, args, message):
    out = tmp_path / "new" / "study"
    assert cli("study", *args, "--out", str(out)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_q7_quotes_the_accelerator_epochs_of_result_files(gpu_result, cpu_result):
    quoted = answers.bench_epochs([gpu_result])
    assert set(quoted["device"]) == {"cuda"} and set(quoted["model"]) == {"cnn"} and len(quoted) == 2
    assert answers.bench_epochs([cpu_result]).empty


def test_q7_times_the_histories_it_is_given_and_trains_only_where_none_is(monkeypatch):
    history = [{"seconds": s} for s in (3.0, 1.0, 2.0)]
    trained = {device: {"cnn": history} for device in ("cpu", accelerator()) if device}
    monkeypatch.setattr(answers, "train_models", lambda *args, **kwargs: pytest.fail("trained again"))
    times = answers.epoch_times(StudyConfig(), None, trained)
    assert list(times["device"]) == list(trained)
    assert list(times["median epoch s"]) == [2.0] * len(trained) and list(times["total train s"]) == [6.0] * len(
        trained
    )
