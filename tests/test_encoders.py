"""The encoder contract (models/__init__.py), checked for every encoder in both modes.

Prime sizes (B=3, T=11, D=14) so that a transposed axis cannot hide.
"""

import pytest
import torch

import models
from models import available, build_encoder, capabilities, count_parameters, encoder_options

B, T, D = 3, 11, 14
ENCODERS = available()
MODES = [False, True]


def make(name, causal, **kw):
    torch.manual_seed(0)
    small = {"n_heads": 2} if "n_heads" in encoder_options(name) else {}  # heads that divide D=14
    enc = build_encoder(name, d_model=D, causal=causal, **{**small, **kw}).eval()
    with torch.no_grad():  # as after training: no norm bias or gain left at its initial 0 or 1
        for module in enc.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)) and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                if getattr(module, "bias", None) is not None:
                    module.bias.uniform_(-1, 1)
    return enc


def lengths_to_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def test_the_three_families_are_available():
    assert {"lstm", "cnn", "transformer"} <= set(ENCODERS)


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("name", ENCODERS)
def test_output_shape_and_attributes(name, causal):
    enc = make(name, causal)
    out = enc(torch.randn(B, T, D), torch.ones(B, T, dtype=torch.bool))
    assert out.shape == (B, T, D)
    assert (enc.d_model, enc.causal) == (D, causal)
    assert enc.receptive_field is None or enc.receptive_field >= 1


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("name", ENCODERS)
def test_outputs_are_zero_at_padding(name, causal):
    mask = lengths_to_mask([11, 7, 1], T)
    out = make(name, causal)(torch.randn(B, T, D), mask)
    assert torch.all(out[~mask] == 0)
    assert torch.all(out[mask].abs().sum(-1) > 0)


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("name", ENCODERS)
def test_padding_does_not_change_real_positions(name, causal):
    enc = make(name, causal)
    lengths = [11, 7, 4]
    x = torch.randn(B, T, D)
    with torch.no_grad():
        ref = enc(x, lengths_to_mask(lengths, T))
        for extra in (1, 6):  # more padding, filled with garbage that must not leak in
            wide = torch.cat([x, 100 * torch.randn(B, extra, D)], dim=1)
            for i, n in enumerate(lengths):
                wide[i, n:] = 100 * torch.randn(T + extra - n, D)
            out = enc(wide, lengths_to_mask(lengths, T + extra))
            for i, n in enumerate(lengths):
                torch.testing.assert_close(out[i, :n], ref[i, :n], atol=1e-5, rtol=1e-5)
        # each row alone, without any padding, gives the same real outputs too
        for i, n in enumerate(lengths):
            alone = enc(x[i : i + 1, :n], torch.ones(1, n, dtype=torch.bool))
            torch.testing.assert_close(alone[0], ref[i, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_causal_mode_never_sees_the_future(name):
    enc = make(name, causal=True)
    mask = torch.ones(B, T, dtype=torch.bool)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        ref = enc(x, mask)
        for t in (0, 5, T - 2):
            changed = x.clone()
            changed[:, t + 1 :] = torch.randn(B, T - t - 1, D)
            out = enc(changed, mask)
            torch.testing.assert_close(out[:, : t + 1], ref[:, : t + 1], atol=1e-6, rtol=1e-6)
            assert not torch.allclose(out[:, t + 1 :], ref[:, t + 1 :])


@pytest.mark.parametrize("name", ENCODERS)
def test_bidirectional_mode_sees_the_future(name):
    enc = make(name, causal=False)
    mask = torch.ones(1, T, dtype=torch.bool)
    x = torch.randn(1, T, D)
    changed = x.clone()
    changed[:, -1] = torch.randn(D)  # random, since LayerNorm hides a constant shift
    with torch.no_grad():
        assert not torch.allclose(enc(x, mask)[:, 0], enc(changed, mask)[:, 0])


def influence(enc, t, T):
    """Input positions whose gradient reaches output position t."""
    x = torch.randn(1, T, enc.d_model, requires_grad=True)
    probe = torch.randn(enc.d_model)  # a random direction: a final LayerNorm makes a plain sum constant
    (enc(x, torch.ones(1, T, dtype=torch.bool))[0, t] @ probe).backward()
    return (x.grad[0].abs().sum(-1) > 0).nonzero().flatten()


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("kernel_size,dilations,n_blocks", [(3, (1, 2, 4, 8), 1), (2, (1, 3), 2), (5, (1, 2), 1)])
def test_cnn_receptive_field_matches_gradients(causal, kernel_size, dilations, n_blocks):
    enc = make("cnn", causal, kernel_size=kernel_size, dilations=dilations, n_blocks=n_blocks)
    expected = 1 + sum((kernel_size - 1) * d for d in list(dilations) * n_blocks)
    assert enc.receptive_field == expected
    length, t = 3 * expected, 2 * expected
    seen = influence(enc, t, length)
    assert len(seen) == expected
    assert seen.max() == t if causal else seen.min() <= t <= seen.max()


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("name", ENCODERS)
def test_receptive_field_is_what_the_gradients_reach(name, causal):
    """None (unbounded): an output sees every position it may (all; those up to it when causal);
    a number: it sees no more positions than that, at a position far from both ends."""
    enc = make(name, causal)
    length = 40 if enc.receptive_field is None else 3 * enc.receptive_field
    t = length // 2
    seen = influence(enc, t, length)
    if enc.receptive_field is None:
        assert len(seen) == (t + 1 if causal else length)
    else:
        assert 1 < len(seen) <= enc.receptive_field


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_declares_its_capabilities(name):
    import importlib

    can = capabilities(name)
    assert can.family.isidentifier() and can.family == can.family.lower()
    assert can.decoder == hasattr(importlib.import_module(f"models.{name}"), "DECODER")


@pytest.mark.parametrize("name", [n for n in ENCODERS if capabilities(n).separate_directions])
def test_separate_directions_never_see_each_other(name):
    """stacking="separate": the first half of the output at t reads only positions <= t, the second
    half only positions >= t (ELMo's forward and backward language models)."""
    enc = make(name, False, stacking="separate")
    length, t = 9, 4
    for half, allowed in ((slice(0, D // 2), range(t + 1)), (slice(D // 2, D), range(t, length))):
        x = torch.randn(1, length, D, requires_grad=True)
        (enc(x, torch.ones(1, length, dtype=torch.bool))[0, t, half] @ torch.randn(D // 2)).backward()
        assert set((x.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()) == set(allowed)


@pytest.mark.parametrize("causal", MODES)
@pytest.mark.parametrize("budget", [100_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("name", ENCODERS)
def test_param_budget_is_met_within_five_percent(name, causal, budget):
    enc = build_encoder(name, causal=causal, param_budget=budget)
    assert abs(count_parameters(enc) - budget) <= 0.05 * budget


def test_the_affine_fast_path_finds_what_the_full_search_finds():
    """The inner width is found in three counts where the count is affine in it, and by search where not."""
    from models.budget import _search, _search_affine

    def affine(w):
        return 1000 + 37 * w

    def quadratic(w):
        return w * w

    calls = []
    assert _search_affine(lambda w: calls.append(w) or affine(w), 8, 50_000, 1 << 18) == _search(
        affine, 8, 50_000, 1 << 18
    )
    assert len(calls) == 3
    assert _search_affine(quadratic, 4, 50_000, 1 << 16) == _search(quadratic, 4, 50_000, 1 << 16)


def test_a_solved_width_is_cached_and_callers_get_their_own_copy():
    first = models.width_for_budget("transformer", 123_456)
    first["d_model"] = -1  # a caller that pops or changes its answer
    again = models.width_for_budget("transformer", 123_456)
    assert again["d_model"] > 0 and again == models.width_for_budget("transformer", 123_456)
    assert models.fixed_width("transformer", param_budget=123_456) == {"name": "transformer", "causal": False, **again}


def test_explicit_width_wins_over_the_default():
    assert build_encoder("cnn").d_model == 256
    assert build_encoder("cnn", d_model=30).d_model == 30


@pytest.mark.parametrize(
    "name,kw,words",
    [
        ("no_such_encoder", {}, "available: " + ", ".join(ENCODERS)),
        ("transformer", {"d_model": 256, "n_heads": 3}, "n_heads=3 must divide d_model=256"),
        ("cnn", {"d_model": -4}, "d_model=-4"),
        ("lstm", {"hidden": 3}, "its options are"),
        ("cnn", {"param_budget": -1}, "param_budget=-1"),
    ],
)
def test_bad_arguments_are_named_in_the_error(name, kw, words):
    with pytest.raises(ValueError, match=words):
        build_encoder(name, **kw)


@pytest.mark.parametrize("name", ENCODERS)
def test_chunked_inference_gives_the_same_outputs(name):
    enc = make(name, causal=False)
    x, mask = torch.randn(7, T, D), lengths_to_mask([11, 9, 3, 11, 5, 8, 1], T)
    with torch.no_grad():
        whole = enc(x, mask)
        enc.infer_chunk_tokens = 2 * T  # two rows at a time
        chunked = enc(x, mask)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_row_chunking_is_the_harness_s_and_runs_the_encoder_on_chunks(name):
    """build_encoder applies row-chunked inference; the encoder's own file knows nothing of it."""
    from tests.conftest import REPO

    source = (REPO / "models" / f"{name}.py").read_text()
    assert "in_row_chunks" not in source and "infer_chunk_tokens" not in source
    enc = make(name, causal=False, infer_chunk_tokens=2 * T)
    own_forward, rows = type(enc).__mro__[1].forward, []

    def counting(self, x, mask):
        rows.append(len(x))
        return own_forward(self, x, mask)

    type(enc).__mro__[1].forward = counting
    try:
        with torch.no_grad():
            enc(torch.randn(7, T, D), torch.ones(7, T, dtype=torch.bool))
        enc(torch.randn(7, T, D), torch.ones(7, T, dtype=torch.bool))  # training: whole, for the backward pass
    finally:
        type(enc).__mro__[1].forward = own_forward
    assert rows == [2, 2, 2, 1, 7]
    assert isinstance(enc, type(enc).__mro__[1]) and type(enc).__name__ == type(enc).__mro__[1].__name__


def test_the_chunked_ssm_scan_is_the_recurrence_across_chunks():
    """models/ssm.py's scan (products inside a chunk, a carried state across) against h_t = a_t h_{t-1} + b_t
    step by step, over 13 steps in chunks of 4 (so a partial last chunk too)."""
    from models.ssm import ssd_scan

    torch.manual_seed(0)
    b, steps, H, P, N = 2, 13, 3, 4, 5
    x, dt, A = torch.randn(b, steps, H, P), torch.rand(b, steps, H), -torch.rand(H) * 3
    B_, C_ = torch.randn(b, steps, N), torch.randn(b, steps, N)
    h, expected = torch.zeros(b, H, P, N), []
    for t in range(steps):
        h = (
            torch.exp(dt[:, t] * A)[..., None, None] * h
            + (x[:, t] * dt[:, t, :, None])[..., None] * B_[:, t, None, None]
        )
        expected.append((h @ C_[:, t, None, :, None]).squeeze(-1))
    torch.testing.assert_close(ssd_scan(x, dt, A, B_, C_, chunk_size=4), torch.stack(expected, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "key,value", [("n_layers", 0), ("dropout", 1.0), ("dropout", -0.1), ("infer_chunk_tokens", -1)]
)
@pytest.mark.parametrize("name", ENCODERS)
def test_the_shared_settings_are_checked_for_every_encoder_that_takes_them(name, key, value):
    if key not in encoder_options(name):
        with pytest.raises(ValueError, match="takes no option"):
            build_encoder(name, d_model=D, **{key: value})
        return
    with pytest.raises(ValueError, match=rf"{key}={value} must"):
        build_encoder(name, d_model=D, **{key: value})


@pytest.mark.parametrize("selective", [True, False])
def test_the_ssm_selects_by_content_only_when_selective(selective):
    """selective=False (model=ssm_lti) is time-invariant: step sizes, B and C are the same for every input;
    the contract (causality, padding) holds for it too."""
    enc = make("ssm", causal=True, selective=selective)
    mixer = enc.blocks[0].forward_mixer
    u1, u2 = torch.randn(2, T, mixer.d_inner), torch.randn(2, T, mixer.d_inner)
    same = all(torch.equal(a, b) for a, b in zip(mixer._selection(u1), mixer._selection(u2)))
    assert same != selective
    x, mask = torch.randn(2, T, D), lengths_to_mask([T, 6], T)
    with torch.no_grad():
        out = enc(x, mask)
        changed = x.clone()
        changed[:, 5:] = torch.randn(2, T - 5, D)
        assert torch.allclose(enc(changed, mask)[:, :5], out[:, :5], atol=1e-5)  # causal
        assert out[1, 6:].abs().max() == 0  # zero at padding
