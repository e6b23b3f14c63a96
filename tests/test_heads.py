"""Heads and the encoder-decoder: shapes, masking, pairing modes, and decoding."""

import pytest
import torch

from models import available, build_encoder, capabilities
from models.heads import PairClassifier, PairModel, Pooling, SequenceClassifier, Tagger, TokenClassifier, TokenEmbedding
from models.seq2seq import Seq2Seq, build_encoder_decoder

B, T, D = 3, 11, 14


def lengths_to_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("kind", ["mean", "max", "attention"])
def test_pooling_ignores_padding(kind):
    torch.manual_seed(0)
    pool = Pooling(D, kind)
    h = torch.randn(B, T, D)
    mask = lengths_to_mask([11, 5, 1], T)
    noisy = h.clone()
    noisy[~mask] = 1e3
    torch.testing.assert_close(pool(h, mask), pool(noisy, mask))


def test_mean_pooling_is_the_mean_of_real_positions():
    h = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    mask = lengths_to_mask([4, 2], 4)
    assert Pooling(1, "mean")(h, mask).flatten().tolist() == [1.5, 4.5]


@pytest.mark.parametrize("mode", ["siamese", "cross"])
def test_pair_model_shapes_and_siamese_symmetry_of_features(mode):
    torch.manual_seed(0)
    enc = build_encoder("cnn", d_model=D)
    model = PairModel(enc, TokenEmbedding(50, D), PairClassifier(D, 3, mode)).eval()
    a, b = torch.randint(1, 50, (B, T)), torch.randint(1, 50, (B, 7))
    ma, mb = lengths_to_mask([11, 6, 3], T), lengths_to_mask([7, 2, 5], 7)
    out = model(a, ma, b, mb) if mode == "siamese" else model(a, ma)
    assert out.shape == (B, 3)


def test_tagger_and_classifier_shapes():
    enc = build_encoder("transformer", d_model=D, n_heads=2)
    mask = lengths_to_mask([11, 6, 3], T)
    ids = torch.randint(1, 50, (B, T))
    assert Tagger(enc, TokenEmbedding(50, D, 8), TokenClassifier(D, 5))(ids, mask).shape == (B, T, 5)
    assert Tagger(enc, TokenEmbedding(50, D), SequenceClassifier(D, 4, "attention"))(ids, mask).shape == (B, 4)


def test_embedding_keeps_padding_at_zero_and_ties_its_output():
    emb = TokenEmbedding(20, 16, 8)
    assert emb.table.weight[0].abs().sum() == 0
    assert emb.logits(torch.randn(2, 3, 16)).shape == (2, 3, 20)


GENERATORS = [n for n in available() if capabilities(n).decoder]  # those that export a DECODER


@pytest.mark.parametrize("name", GENERATORS)
def test_every_family_decodes_causally(name):
    torch.manual_seed(0)
    model = Seq2Seq(build_encoder_decoder(name, d_model=16), 30, bos=2, eos=3).eval()
    src, src_mask = torch.randint(4, 30, (2, 6)), torch.ones(2, 6, dtype=torch.bool)
    tgt = torch.randint(4, 30, (2, 5))
    full = model(src, src_mask, tgt, torch.ones(2, 5, dtype=torch.bool))
    changed = tgt.clone()
    changed[:, 3:] = 5
    part = model(src, src_mask, changed, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(full[:, :3], part[:, :3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", GENERATORS)
def test_decoding_step_by_step_matches_the_decoder_over_the_whole_prefix(name):
    torch.manual_seed(1)
    decoder = build_encoder_decoder(name, d_model=16).decoder.eval()
    memory, y = torch.randn(3, 7, 16), torch.randn(3, 9, 16)
    memory_mask = torch.ones(3, 7, dtype=torch.bool)
    memory_mask[1, 4:] = False  # padded memory stays hidden in both paths
    with torch.no_grad():
        full = decoder(y, torch.ones(3, 9, dtype=torch.bool), memory, memory_mask)
        state, steps = decoder.start(memory, memory_mask), []
        for t in range(9):
            out, state = decoder.step(y[:, t : t + 1], state)
            steps.append(out)
            if t == 4:  # beam search reorders hypotheses: the state must follow its rows
                state.reorder(torch.tensor([2, 0, 1]))
                y, full, memory_mask = y[[2, 0, 1]], full[[2, 0, 1]], memory_mask[[2, 0, 1]]
                state.fixed["mask"] = memory_mask
                state.fixed["memory_kv"] = _reorder_fixed(state.fixed["memory_kv"], [2, 0, 1])
                steps = [s[[2, 0, 1]] for s in steps]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)


def _reorder_fixed(memory_kv, order):
    """The per-source part, reordered for the test only (in beam search it never changes rows)."""
    if isinstance(memory_kv, list):
        return [_reorder_fixed(kv, order) for kv in memory_kv]
    return tuple(t[order] for t in memory_kv)


def _score(model, src, src_mask, ids):
    """Log-probability of ``ids`` followed by eos."""
    seq = torch.tensor([[model.bos] + ids + [model.eos]])
    logp = model(src, src_mask, seq[:, :-1], torch.ones_like(seq[:, :-1], dtype=torch.bool)).log_softmax(-1)
    return float(logp[0, torch.arange(seq.shape[1] - 1), seq[0, 1:]].sum())


@pytest.mark.parametrize("name", GENERATORS)
def test_beam_search_of_size_one_is_greedy_and_a_wider_beam_scores_no_worse(name):
    torch.manual_seed(3)
    model = Seq2Seq(build_encoder_decoder(name, d_model=16), 12, bos=2, eos=3).eval()
    src, src_mask = torch.randint(4, 12, (1, 5)), torch.ones(1, 5, dtype=torch.bool)
    greedy = [2]
    with torch.no_grad():
        for _ in range(6):
            seq = torch.tensor([greedy])
            nxt = int(model(src, src_mask, seq, torch.ones_like(seq, dtype=torch.bool))[0, -1].argmax())
            greedy.append(nxt)
            if nxt == 3:
                break
        greedy = [t for t in greedy[1:] if t != 3]
        assert model.generate(src, src_mask, max_len=6, beam_size=1)[0] == [t for t in greedy if t]
        wide = model.generate(src, src_mask, max_len=6, beam_size=5, alpha=0.0)[0]
        narrow = model.generate(src, src_mask, max_len=6, beam_size=1, alpha=0.0)[0]
        if len(wide) < 6 and len(narrow) < 6:  # both finished: compare complete hypotheses
            assert _score(model, src, src_mask, wide) >= _score(model, src, src_mask, narrow) - 1e-5
