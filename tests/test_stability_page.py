"""training/stability.py: the variants it builds and the page it writes
from finished runs (no training here: the runs are given)."""

import keras

import keras_dynconv as kdc
from training import stability


def _run(variant, seed, accuracy, train_accuracies, entropy):
    epochs = [{"epoch": i + 1, "accuracy": a, "val_accuracy": a,
               "entropy": entropy} for i, a in enumerate(train_accuracies)]
    steps = [{"step": 10 * i, "loss": 1.0, "accuracy": 0.5, "learning_rate": 0.01,
              "temperature": 1.0, "gradient_norm": 1.0 + i,
              "bn_max_moving_mean": 1.0, "bn_max_moving_variance": 10.0 ** i,
              "entropy": 0.5} for i in range(4)]
    return {"variant": variant, "seed": seed, "test_accuracy": accuracy,
            "epochs": epochs, "steps": steps}


def test_page_pairs_seeds_flags_collapses_and_traces_them():
    args = stability.parse_args(["--epochs", "2", "--seeds", "0", "1",
                                 "--variants", "static", "paper", "layer"])
    runs = {("static", 0): _run("static", 0, 0.80, [0.7, 0.8], None),
            ("static", 1): _run("static", 1, 0.82, [0.7, 0.8], None),
            ("paper", 0): _run("paper", 0, 0.40, [0.7, 0.3], 0.1),
            ("paper", 1): _run("paper", 1, 0.80, [0.7, 0.8], 0.9),
            ("layer", 0): _run("layer", 0, 0.83, [0.7, 0.8], 0.8),
            ("layer", 1): _run("layer", 1, 0.82, [0.7, 0.8], 0.8)}
    text = stability.page(args, runs)
    assert "| paper | 0 | 0.4000 | -40.0 | 0.10 | yes |" in text
    assert "| layer | 1 | 0.8200 | +0.0 | 0.80 | no |" in text
    # Paired by seed: +3 and 0 points, standard error 1.5.
    assert "| layer | 2 | 0.8250 | 0.0071 | +1.50 +- 1.50 (2 seeds) |" in text
    assert "paper, seed 0:" in text and "layer, seed 0:" not in text
    assert "- `layer`: the paper's layer with `attention_normalization='layer'`" in text


def test_variants_are_the_papers_layer_with_one_change():
    model = stability.build_model("layer", bn_momentum=0.8)
    layers = kdc.utils.dynamic_layers(model)
    assert all(l.attention_normalization == "layer" and l.kernel_correlation == 0.0
               for l in layers)
    paper = stability.build_model("paper", bn_momentum=0.8)
    assert all(l.attention_normalization == "none"
               for l in kdc.utils.dynamic_layers(paper))
    assert all(l.momentum == 0.8 for l in paper.layers
               if isinstance(l, keras.layers.BatchNormalization))
    assert not kdc.utils.dynamic_layers(stability.build_model("static", 0.9))


def test_defaults_variant_keeps_the_packages_defaults_and_the_user_cnn_swaps_layers():
    layers = kdc.utils.dynamic_layers(stability.build_model("defaults", 0.9))
    assert layers and all(l.attention_normalization == "layer"
                          and l.kernel_correlation == 0.99 for l in layers)
    former = kdc.utils.dynamic_layers(stability.build_model("defaults_independent", 0.9))
    assert all(l.attention_normalization == "layer" and l.kernel_correlation == 0.0
               for l in former)
    args = stability.parse_args(["--model", "user_cnn", "--default-annealing",
                                 "--optimizer", "adam", "--epochs", "16"])
    assert stability.annealing("defaults", args).end == 3.0
    assert stability.annealing("paper", args).end == 1.0
    assert stability.annealing("paper", args).epochs == 10  # the callback's length
    assert "user_cnn-adam-16ep-default-annealing" in stability.run_path("paper", 0, args)
    static = stability.build_model("static", 0.99, "user_cnn")
    paper = stability.build_model("paper", 0.99, "user_cnn")
    assert not kdc.utils.dynamic_layers(static)
    swapped = kdc.utils.dynamic_layers(paper)
    # Every conv of the six blocks; the stem stays static.
    assert len(swapped) == 2 * len(stability.USER_CNN_BLOCKS)
    assert all(l.attention_normalization == "none" for l in swapped)
    assert paper.output_shape == static.output_shape == (None, 10)
    assert static.count_params() < paper.count_params()


def test_trace_run_probes_the_results_run_on_its_own_preprocessing():
    from training import results, trace_run

    args = trace_run.parse_args(["--dataset", "fashion_mnist:embedded", "--epochs", "2"])
    config = results.config_for(args.variant, args.seed, results.parse_args(
        ["--dataset", args.dataset, "--epochs", "2"]))
    images, labels = trace_run.probe_batch(config, count=8)
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8, 10)
    # MobileNet preprocessing: [0, 255] -> [-1, 1].
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() < 0
