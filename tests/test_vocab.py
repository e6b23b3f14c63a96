"""Word, label and subword vocabularies, and their on-disk cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from datasets import Dataset, DatasetDict

from bench.data import DataError
from bench.data import vocab as V
from bench.errors import UserError

SENTENCES = [["the", "cat", "sat"], ["the", "dog", "sat"], ["the", "cat", "ran"], ["a", "bird"]]


def test_pad_is_0_unk_is_1_and_optional_specials_follow_in_fixed_order():
    vocab = V.build_vocab(SENTENCES, specials=("eos", "bos"))
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.special_id("bos"), vocab.special_id("eos")) == (0, 1, 2, 3)
    assert vocab.special_id("cls") is None


def test_words_sorted_by_frequency_then_alphabetically():
    assert V.build_vocab(SENTENCES).itos[2:] == ["the", "cat", "sat", "a", "bird", "dog", "ran"]


def test_max_size_bounds_the_whole_vocabulary_keeping_the_most_frequent():
    vocab = V.build_vocab(SENTENCES, max_size=5, specials=("sep",))
    assert vocab.itos == ["<pad>", "<unk>", "<sep>", "the", "cat"]


def test_min_freq_leaves_out_rare_words():
    assert V.build_vocab(SENTENCES, min_freq=2).itos[2:] == ["the", "cat", "sat"]


def test_unknown_tokens_encode_to_unk_and_known_ones_round_trip():
    vocab = V.build_vocab(SENTENCES, min_freq=2)
    ids = vocab.encode(["the", "zebra", "sat", "<pad>"])
    assert ids == [2, 1, 4, 0]
    assert vocab.decode(ids) == ["the", "<unk>", "sat"]  # padding dropped
    assert vocab.decode(ids, skip_pad=False)[-1] == "<pad>"


def test_lowercase_folds_case_when_building_and_when_encoding():
    vocab = V.build_vocab([["The", "CAT"], ["the"]], lowercase=True)
    assert vocab.itos[2:] == ["the", "cat"]
    assert vocab.encode(["THE", "Cat"]) == [2, 3]
    assert vocab.encode_text("The cat!") == [2, 3, 1]


def test_tokenize_splits_words_from_punctuation_and_keeps_inner_apostrophes():
    assert V.tokenize("Don't stop, it's 9.5!") == ["Don't", "stop", ",", "it's", "9", ".", "5", "!"]
    assert V.tokenize("does n't , 's", lowercase=True) == ["does", "n't", ",", "'s"]
    assert V.tokenize("Ein Hund läuft.", lowercase=True) == ["ein", "hund", "läuft", "."]


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="max_size=3 is too small"):
        V.build_vocab(SENTENCES, max_size=3, specials=("bos", "eos"))
    with pytest.raises(UserError, match="'tab' is not one of bos, eos, sep, cls, mask"):
        V.build_vocab(SENTENCES, specials=("tab",))
    with pytest.raises(UserError, match="min_freq=0"):
        V.build_vocab(SENTENCES, min_freq=0)


def test_label_ids_follow_sorted_names_and_unseen_labels_are_not_mapped_silently():
    labels = V.Labels(["pos", "neg", "pos", "neutral"])
    assert labels.names == ["neg", "neutral", "pos"] and labels.encode("pos") == 2 and labels.decode(0) == "neg"
    with pytest.raises(DataError, match="the label 'mixed' is not among the training labels neg, neutral, pos"):
        labels.encode("mixed")
    assert labels.encode("mixed", unknown=-100) == -100


# -- the cache ---------------------------------------------------------------------------------


def test_second_build_loads_the_cache_file_instead_of_rebuilding(tmp_path, monkeypatch):
    first = V.build_vocab(SENTENCES, max_size=6, cache_dir=tmp_path)
    (path,) = tmp_path.glob("words-*.json")
    stamp = path.stat().st_mtime_ns

    def no_rebuild(*args):
        raise AssertionError("rebuilt although the cache holds this vocabulary")

    monkeypatch.setattr(V, "_count_words", no_rebuild)
    assert V.build_vocab(SENTENCES, max_size=6, cache_dir=tmp_path) == first
    assert path.stat().st_mtime_ns == stamp


def test_changed_data_or_settings_change_the_cache_key(tmp_path):
    V.build_vocab(SENTENCES, cache_dir=tmp_path)
    V.build_vocab(SENTENCES[:-1], cache_dir=tmp_path)
    V.build_vocab(SENTENCES, min_freq=2, cache_dir=tmp_path)
    V.build_vocab([["the cat"], ["sat"]], cache_dir=tmp_path)  # token boundaries count, not just characters
    V.build_vocab([["the", "cat"], ["sat"]], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("words-*.json"))) == 5


def test_unreadable_cache_file_is_rebuilt(tmp_path):
    expected = V.build_vocab(SENTENCES, cache_dir=tmp_path)
    (path,) = tmp_path.glob("words-*.json")
    path.write_text("{torn")
    assert V.build_vocab(SENTENCES, cache_dir=tmp_path) == expected
    assert V.Vocab.from_json(path.read_text()) == expected


# -- subwords ----------------------------------------------------------------------------------

TEXTS = ["Ein Hund läuft im Park.", "A dog runs in the park.", "Zwei Hunde laufen.", "Two dogs run."] * 3


def test_joint_bpe_has_fixed_specials_and_round_trips_text():
    subwords = V.build_subwords(TEXTS, vocab_size=80, min_freq=1)
    assert [subwords.tokenizer.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert len(subwords) <= 80
    ids = subwords.encode("A dog runs in the park.", bos_eos=True)
    assert ids[0] == subwords.bos_id and ids[-1] == subwords.eos_id
    assert subwords.decode(ids) == "A dog runs in the park."
    assert subwords.unk_id in subwords.encode("Ω")  # a character never seen in training


def test_bpe_is_deterministic_and_cached(tmp_path, monkeypatch):
    first = V.build_subwords(TEXTS, vocab_size=80, min_freq=1, cache_dir=tmp_path)
    assert V.build_subwords(TEXTS, vocab_size=80, min_freq=1).to_json() == first.to_json()

    def no_rebuild(*args):
        raise AssertionError("rebuilt although the cache holds this model")

    monkeypatch.setattr(V, "_train_bpe", no_rebuild)
    assert V.build_subwords(TEXTS, vocab_size=80, min_freq=1, cache_dir=tmp_path).to_json() == first.to_json()
    assert len(list(tmp_path.glob("bpe-*.json"))) == 1


# -- per task type -----------------------------------------------------------------------------


def splits(**columns) -> DatasetDict:
    return DatasetDict({split: Dataset.from_dict(columns) for split in ("train", "validation", "test")})


def test_build_vocabs_reads_the_columns_of_each_task_type():
    data = splits(tokens=[["Dogs", "bark"]], tags=[["NOUN", "VERB"]])
    words, tags = V.build_vocabs(data, "labelling", lowercase=True)
    assert words.itos[2:] == ["bark", "dogs"] and tags.names == ["NOUN", "VERB"]
    words, labels = V.build_vocabs(splits(text=["Good film!"], label=["pos"]), "classification")
    assert words.itos[2:] == ["!", "Good", "film"] and labels.names == ["pos"]
    words, labels = V.build_vocabs(splits(text_a=["a b"], text_b=["b c"], label=["x"]), "pair")
    assert words.itos[2:] == ["b", "a", "c"]
    subwords, none = V.build_vocabs(splits(source=TEXTS[::2], target=TEXTS[1::2]), "generation", bpe_size=60)
    assert none is None and isinstance(subwords, V.Subwords) and "▁Hund" in subwords.tokenizer.get_vocab()
