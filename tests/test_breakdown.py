"""Where the time goes: operators into categories and libraries, and a profile of a real encoder."""

import torch

import models
from bench.breakdown import CATEGORIES, category, library, profile_config


def test_an_operator_inside_a_recurrence_or_attention_counts_for_it():
    assert category("aten::addmm", ["aten::gru"]) == "recurrence"  # the GEMMs of a GRU cell
    assert category(
        "aten::bmm", ["aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention_math"]
    ) == ("attention")
    assert category("aten::addmm", ["aten::linear"]) == "matrix multiply"
    assert category("mkldnn::_linear_pointwise", []) == "matrix multiply"
    assert category("aten::mkldnn_convolution", ["aten::conv1d"]) == "convolution"
    assert category("aten::native_layer_norm", []) == "normalisation"
    assert category("aten::_to_copy", []) == "memory copy"
    assert category("aten::gelu", []) == "elementwise"
    assert category("aten::addcdiv_", []) == "elementwise"
    assert category("aten::item", []) == "other"


def test_the_library_follows_the_kernel_and_the_dtype():
    assert library("aten::mkldnn_rnn_layer", torch.float32) == "oneDNN"
    assert library("mkl::_mkl_linear", torch.float32) == "MKL"
    assert library("aten::addmm", torch.bfloat16) == "oneDNN"
    assert library("aten::gelu", torch.float32) == "native"


def test_a_profile_puts_an_lstm_in_recurrence_and_a_cnn_in_convolution():
    for name, expected in (("lstm", "recurrence"), ("cnn", "convolution")):
        build = models.fixed_width(name=name, d_model=32)
        m = profile_config(build, "cpu", "fp32", batch=4, seq_len=24, threads=1, min_run_time=0.02)
        totals = {cat: sum(libs.values()) for cat, libs in m["ms"].items()}
        assert set(totals) <= set(CATEGORIES) and m["calls"] == max(1, min(5, round(0.02 / (m["infer_ms"] / 1e3))))
        assert max(totals, key=totals.get) == expected, totals
        assert m["top"] and all(t["ms"] > 0 for t in m["top"])
