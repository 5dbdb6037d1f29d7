"""N3S negative sampling (tamer_hf.n3s): report embeddings over the attention mask, the on-disk cache, the
least-similar search (FAISS and exact agree with a numpy brute force), and the per-batch swap rule of C-MELT.

Everything runs on a tiny T5 encoder and a word-level tokenizer built locally, or on random unit vectors.
"""

import sys
import warnings

import numpy as np
import pytest
import torch

from datasets_scripts import synthetic
from tamer_hf.n3s import (DUPLICATE_COSINE, NegativeSampler, NeighbourIndex, cached_report_embeddings,
                          embed_reports, local_t5_encoder)

try:
    import faiss  # noqa: F401

    HAS_FAISS = True
except ImportError:
    HAS_FAISS = False
needs_faiss = pytest.mark.skipif(not HAS_FAISS, reason="faiss is not installed (pip install faiss-cpu)")


def unique_reports() -> list[str]:
    """Machine-style reports with repeats (deduplicated as ReportTable does), plus upper-case variants: distinct
    texts that the lower-casing tokenizer turns into the same tokens, hence embedding duplicates."""
    rng = np.random.default_rng(0)
    rows = [synthetic.write_report(synthetic.sample_conditions(rng), rng) for _ in range(80)]
    table = list(dict.fromkeys(rows))
    return table + [table[0].upper(), table[1].upper()]


def random_unit_vectors(num: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((num, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def brute_force_least_similar(embeddings: np.ndarray, query: int, k: int) -> np.ndarray:
    return np.argsort(embeddings @ embeddings[query], kind="stable")[:k]


@pytest.fixture(scope="module")
def reports():
    return unique_reports()


@pytest.fixture(scope="module")
def encoder(reports):
    return local_t5_encoder(reports, d_model=32, num_layers=2, num_heads=4, seed=0)


@pytest.fixture(scope="module")
def report_embeddings(reports, encoder):
    model, tokenizer = encoder
    return embed_reports(reports, model, tokenizer, batch_size=16)


# ----------------------------------------------------------------------------------------------------------------
# embeddings
# ----------------------------------------------------------------------------------------------------------------
def test_embedding_is_the_normalised_mean_of_last_hidden_state_over_the_attention_mask(reports, encoder):
    model, tokenizer = encoder
    batch = [reports[2], reports[5] + " " + reports[7], reports[9]]  # different lengths: padding in the batch
    embeddings = embed_reports(batch, model, tokenizer, batch_size=3, max_length=64)

    tokens = tokenizer(batch, padding=True, return_tensors="pt")
    assert (tokens["attention_mask"] == 0).any()
    with torch.no_grad():
        hidden = model(**tokens).last_hidden_state.numpy()  # (3, L, 32)
    for row, mask in enumerate(tokens["attention_mask"].numpy()):
        expected = hidden[row, mask == 1].mean(axis=0)
        np.testing.assert_allclose(embeddings[row], expected / np.linalg.norm(expected), atol=1e-5)
    assert embeddings.dtype == np.float32 and embeddings.shape == (3, 32)


def test_embedding_does_not_depend_on_the_other_reports_of_the_batch(reports, encoder):
    model, tokenizer = encoder
    alone = embed_reports([reports[2]], model, tokenizer)
    with_a_long_report = embed_reports([reports[2], " ".join(reports[:6])], model, tokenizer, batch_size=2)
    np.testing.assert_allclose(with_a_long_report[0], alone[0], atol=1e-5)


def test_include_padding_reproduces_the_released_mean_over_padding(reports, encoder):
    model, tokenizer = encoder
    batch = [reports[2], " ".join(reports[:4])]
    embeddings = embed_reports(batch, model, tokenizer, batch_size=2, include_padding=True)
    with torch.no_grad():
        hidden = model(**tokenizer(batch, padding=True, return_tensors="pt")).last_hidden_state.numpy()
    expected = hidden.mean(axis=1)  # (2, 32): every position, padding included
    np.testing.assert_allclose(embeddings, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    assert not np.allclose(embeddings[0], embed_reports(batch[:1], model, tokenizer)[0], atol=1e-3)


def test_any_encoder_with_last_hidden_state_works(reports):
    from transformers import BertModel

    from tamer_hf.text import small_text_config, train_report_tokenizer

    tokenizer = train_report_tokenizer(reports, vocab_size=300)
    torch.manual_seed(0)
    model = BertModel(small_text_config(tokenizer, hidden_size=32, num_layers=1, num_heads=2))
    embeddings = embed_reports(reports[:5], model, tokenizer)
    assert embeddings.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------------------------------------------
def count_forward_calls(model) -> list:
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(1))
    return calls


def test_second_call_reads_the_cache_without_running_the_encoder(tmp_path, reports):
    reports = reports[:20]
    model, tokenizer = local_t5_encoder(reports, d_model=32, num_layers=1, seed=1)
    calls = count_forward_calls(model)
    first = cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer, batch_size=8)
    assert len(calls) == -(-len(reports) // 8)
    second = cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer, batch_size=8)
    assert len(calls) == -(-len(reports) // 8)  # no new forward pass
    np.testing.assert_array_equal(second, first)
    np.testing.assert_allclose(first, embed_reports(reports, model, tokenizer), atol=1e-6)
    assert [path.suffix for path in tmp_path.iterdir()] == [".npy"]  # no temporary file left behind


def test_cache_is_recomputed_when_reports_max_length_or_weights_change(tmp_path, reports):
    reports = reports[:20]
    model, tokenizer = local_t5_encoder(reports, d_model=32, num_layers=1, seed=1)
    calls = count_forward_calls(model)
    cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer)
    for change in ("reports", "max_length", "weights"):
        before = len(calls)
        if change == "reports":
            cached_report_embeddings(reports[::-1], model, tmp_path, tokenizer=tokenizer)
        elif change == "max_length":
            cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer, max_length=8)
        else:
            with torch.no_grad():
                model.shared.weight[5, 0] += 1e-3
            cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer)
        assert len(calls) > before, change
    assert len(list(tmp_path.glob("*.npy"))) == 4


def test_an_unreadable_cache_file_is_recomputed(tmp_path, reports):
    reports = reports[:20]
    model, tokenizer = local_t5_encoder(reports, d_model=32, num_layers=1, seed=1)
    first = cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer)
    (cache_file,) = tmp_path.glob("*.npy")
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # as if a disk had filled up under an older writer
    calls = count_forward_calls(model)
    np.testing.assert_array_equal(cached_report_embeddings(reports, model, tmp_path, tokenizer=tokenizer), first)
    assert len(calls) > 0
    np.testing.assert_array_equal(np.load(cache_file), first)


def test_cache_takes_a_saved_encoder_folder(tmp_path, reports, encoder):
    reports = reports[:20]
    model, tokenizer = encoder
    model.save_pretrained(tmp_path / "encoder")
    tokenizer.save_pretrained(tmp_path / "encoder")
    from_folder = cached_report_embeddings(reports, str(tmp_path / "encoder"), tmp_path / "cache")
    np.testing.assert_allclose(from_folder, embed_reports(reports, model, tokenizer), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# least-similar search
# ----------------------------------------------------------------------------------------------------------------
def test_exact_backend_returns_the_brute_force_least_similar_reports():
    embeddings = random_unit_vectors(300)
    index = NeighbourIndex(embeddings, backend="exact", corpus_chunk=37, query_chunk=4)  # several chunks of each
    queries = [0, 5, 17, 299, 5]
    neighbours = index.least_similar(queries, k=10)
    for row, query in enumerate(queries):
        np.testing.assert_array_equal(neighbours.ids[row], brute_force_least_similar(embeddings, query, 10))
        np.testing.assert_allclose(neighbours.similarities[row], embeddings[neighbours.ids[row]] @ embeddings[query],
                                   atol=1e-6)


@needs_faiss
def test_faiss_and_exact_backends_return_the_same_neighbours():
    embeddings = random_unit_vectors(2000, dim=32, seed=1)
    queries = np.arange(0, 2000, 50)
    exact = NeighbourIndex(embeddings, backend="exact").least_similar(queries, k=64)
    faiss_result = NeighbourIndex(embeddings, backend="faiss").least_similar(queries, k=64)
    np.testing.assert_array_equal(faiss_result.ids, exact.ids)
    np.testing.assert_allclose(faiss_result.similarities, exact.similarities, atol=1e-5)


def test_faiss_requested_without_faiss_raises_an_import_error_that_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now fails as if it were not installed
    with pytest.raises(ImportError, match=r"pip install faiss-cpu.*backend='exact'"):
        NeighbourIndex(random_unit_vectors(10), backend="faiss")
    assert NeighbourIndex(random_unit_vectors(10), backend="auto").backend == "exact"


def test_exact_backend_on_an_explicit_device_gives_the_same_neighbours():
    embeddings = random_unit_vectors(200)
    on_device = NeighbourIndex(embeddings, backend="exact", device="cpu", corpus_chunk=50).least_similar([3, 4], 7)
    default = NeighbourIndex(embeddings, backend="exact").least_similar([3, 4], 7)
    np.testing.assert_array_equal(on_device.ids, default.ids)
    if HAS_FAISS:
        with pytest.raises(ValueError, match="backend='exact' only"):
            NeighbourIndex(embeddings, backend="faiss", device="cpu")


def test_index_refuses_rows_that_are_not_unit_vectors():
    with pytest.raises(ValueError, match="L2-normalised"):
        NeighbourIndex(2 * random_unit_vectors(10), backend="exact")


def test_k_above_the_corpus_size_returns_every_report():
    neighbours = NeighbourIndex(random_unit_vectors(5), backend="exact").least_similar([0], k=64)
    assert sorted(neighbours.ids[0].tolist()) == [0, 1, 2, 3, 4]
    assert neighbours.ids[0][-1] == 0  # the report itself is the most similar


# ----------------------------------------------------------------------------------------------------------------
# the per-batch rule
# ----------------------------------------------------------------------------------------------------------------
def swap_count(sampler, batch_size, generator):
    _, is_aligned = sampler(torch.zeros(batch_size, dtype=torch.long), generator)
    return int((is_aligned == 0).sum())


def test_number_of_swaps_is_int_of_half_the_batch_plus_a_uniform_draw():
    sampler = NegativeSampler(NeighbourIndex(random_unit_vectors(100), backend="exact"), k=8)
    for seed in range(40):
        assert swap_count(sampler, 16, torch.Generator().manual_seed(seed)) == 8  # even B: always B / 2
    odd_counts = set()
    for seed in range(40):
        generator = torch.Generator().manual_seed(seed)
        u = torch.rand((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).item()  # first draw
        count = swap_count(sampler, 15, generator)
        assert count == int(0.5 * 15 + u)  # floor(B / 2) when u < 0.5, ceil(B / 2) otherwise
        odd_counts.add(count)
    assert odd_counts == {7, 8}
    quarter = NegativeSampler(sampler.index, k=8, negative_fraction=0.25)
    assert {swap_count(quarter, 10, torch.Generator().manual_seed(s)) for s in range(40)} == {2, 3}


@pytest.mark.parametrize("k", [6, 500])  # 500 > R: every other non-duplicate report is a candidate
def test_negatives_are_among_the_k_least_similar_and_never_a_duplicate_of_the_positive(reports, report_embeddings, k):
    sims = report_embeddings @ report_embeddings.T  # (R, R), computed independently of the index
    sampler = NegativeSampler(NeighbourIndex(report_embeddings, backend="exact"), k=k)
    generator = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 1, len(reports) - 2, len(reports) - 1, 3, 4, 5, 0] * 4)  # positives with duplicates
    for _ in range(25):
        new_ids, is_aligned = sampler(batch, generator)
        assert torch.equal(new_ids[is_aligned == 1], batch[is_aligned == 1])
        assert int((is_aligned == 0).sum()) == len(batch) // 2
        for positive, negative in zip(batch[is_aligned == 0].tolist(), new_ids[is_aligned == 0].tolist()):
            assert reports[negative].lower() != reports[positive].lower()  # not the same text, nor a case variant
            assert sims[positive, negative] < DUPLICATE_COSINE
            kth_lowest = np.sort(sims[positive])[min(k, len(reports)) - 1]
            assert sims[positive, negative] <= kth_lowest + 1e-6  # within the k least similar (ties aside)


def test_a_corpus_smaller_than_k_draws_from_every_other_non_duplicate_report(reports, encoder):
    table = reports[:8] + [reports[0].upper()]  # report 8 is report 0 for the lower-casing tokenizer
    model, tokenizer = encoder
    sampler = NegativeSampler(NeighbourIndex(embed_reports(table, model, tokenizer), backend="exact"), k=64)
    generator = torch.Generator().manual_seed(0)
    negatives = set()
    for _ in range(50):
        new_ids, is_aligned = sampler(torch.zeros(4, dtype=torch.long), generator)
        negatives |= set(new_ids[is_aligned == 0].tolist())
    assert negatives == set(range(1, 8))


def test_random_mode_draws_any_other_report_but_never_a_duplicate():
    embeddings = random_unit_vectors(40)
    embeddings[1:11] = embeddings[0]  # reports 1..10 embed exactly like report 0 (e.g. equal after truncation)
    sampler = NegativeSampler(NeighbourIndex(embeddings, backend="exact"), mode="random")
    generator = torch.Generator().manual_seed(0)
    negatives = set()
    for _ in range(100):
        new_ids, is_aligned = sampler(torch.zeros(8, dtype=torch.long), generator)
        negatives |= set(new_ids[is_aligned == 0].tolist())
    assert negatives == set(range(11, 40))  # every other report except the ten duplicates


def test_random_mode_finds_the_last_non_duplicate_when_almost_everything_duplicates_the_positive():
    embeddings = random_unit_vectors(30)
    embeddings[:29] = embeddings[0]  # only report 29 differs
    sampler = NegativeSampler(NeighbourIndex(embeddings, backend="exact"), mode="random", max_redraws=1)
    new_ids, is_aligned = sampler(torch.zeros(6, dtype=torch.long), torch.Generator().manual_seed(0))
    assert new_ids[is_aligned == 0].tolist() == [29, 29, 29]


@pytest.mark.parametrize("mode", ["n3s", "random"])
def test_a_corpus_of_one_distinct_report_stays_aligned_with_one_warning(mode):
    embeddings = np.repeat(random_unit_vectors(1), 3, axis=0)  # three texts, one embedding
    sampler = NegativeSampler(NeighbourIndex(embeddings, backend="exact"), mode=mode)
    batch = torch.tensor([0, 1, 2, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            new_ids, is_aligned = sampler(batch, torch.Generator().manual_seed(0))
            assert torch.equal(new_ids, batch) and torch.equal(is_aligned, torch.ones(4, dtype=torch.long))
    assert len([w for w in caught if "no negative candidate" in str(w.message)]) == 1


@pytest.mark.parametrize("mode", ["n3s", "random"])
def test_same_ids_and_generator_state_give_the_same_negatives(mode):
    sampler = NegativeSampler(NeighbourIndex(random_unit_vectors(500), backend="exact"), k=64, mode=mode)
    batch = torch.arange(0, 500, 7)  # (72,)
    generator = torch.Generator().manual_seed(123)
    state = generator.get_state()
    first = sampler(batch, generator)
    generator.set_state(state)
    assert all(torch.equal(a, b) for a, b in zip(first, sampler(batch, generator)))
    torch.manual_seed(5)  # generator=None: torch's global RNG, which training checkpoints save and restore
    global_first = sampler(batch)
    torch.manual_seed(5)
    assert all(torch.equal(a, b) for a, b in zip(global_first, sampler(batch)))


@needs_faiss
def test_faiss_and_exact_samplers_make_the_same_choices():
    embeddings = random_unit_vectors(3000, dim=32, seed=2)
    batch = torch.arange(0, 3000, 23)
    choices = [NegativeSampler(NeighbourIndex(embeddings, backend=backend))(batch, torch.Generator().manual_seed(9))
               for backend in ("exact", "faiss")]
    assert all(torch.equal(a, b) for a, b in zip(*choices))


def test_sampler_keeps_the_device_and_rejects_ids_outside_the_table():
    sampler = NegativeSampler(NeighbourIndex(random_unit_vectors(20), backend="exact"), k=4)
    new_ids, is_aligned = sampler(torch.tensor([1, 2, 3]))
    assert new_ids.dtype == is_aligned.dtype == torch.long and new_ids.device.type == "cpu"
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        sampler(torch.tensor([3, 20]))
