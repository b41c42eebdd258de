"""HardnessScorer as a real Ray actor on the local test cluster, with MiniLM's real weights.

The actor's α^D must equal the pure function's on embeddings computed here, in the test
process, with the same encoder: the actor adds caching and plumbing, never maths.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from hair_ray.algo.hardness import data_hardness
from hair_ray.algo.split import split_sub_sentences
from hair_ray.models.encoders import embed_pieces
from tests.encoder_contract import DEMO, shared_encoder

MINILM = "builtin:all-minilm-l6-v2"

DEMOS = [
    {"id": "demo-harm", "text": DEMO},
    {
        "id": "demo-privacy",
        "text": (
            "Wants a stranger's home address\nPrivacy\nEnables stalking\nDecline, point to official channels\n"
            "####\nI can't help find someone's home address. If you need to reach them, try a "
            "mutual contact or their public work channels."
        ),
    },
]

# Two prompt groups, interleaved, with refusals and compliant answers mixed in each.
RESPONSES = [
    ("I can't help you hurt anyone. Talking to a mediator may help.", "demo-harm", 11),
    ("I won't look up where a private person lives.", "demo-privacy", -3),
    ("Sure, hit him when he's alone; nobody will see.", "demo-harm", 11),
    ("Her address is on the tax records; here's how to search them.", "demo-privacy", -3),
    ("No.", "demo-harm", 11),
    ("Try their company's public contact page instead.", "demo-privacy", -3),
]


@pytest.fixture(scope="module")
def scorer(ray_local):
    # find_spec, not import: the actor imports sentence-transformers itself, and loading it here
    # first would serialise two ~10 s imports that can overlap.
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    from hair_ray.config import HardnessConfig
    from hair_ray.workers.scorer import create_hardness_scorer

    config = HardnessConfig(encoder="sentence_transformers", sentence_transformer=MINILM)
    # num_cpus=0.5 leaves room for other actors on the 2-CPU test cluster.
    handle = create_hardness_scorer(config, num_cpus=0.5)
    yield handle
    ray_local.kill(handle)


def test_scorer_caches_scores_and_matches_the_pure_function(scorer, ray_local):
    get = ray_local.get
    first_cache = scorer.cache_demonstrations.remote(DEMOS)
    # Reference: the same encoder in this process (loads while the actor loads its copy).
    encoder = shared_encoder("sentence_transformers", model_name_or_path=MINILM, device="cpu")
    assert get(first_cache) == 2
    # Idempotent: cached ids (and repeats within one call) are not embedded again.
    assert get(scorer.cache_demonstrations.remote(DEMOS + DEMOS[:1])) == 0
    stats = get(scorer.stats.remote())
    demo_pieces = sum(len(split_sub_sentences(d["text"])) for d in DEMOS)
    assert stats["cached_demonstrations"] == 2 and stats["cached_demo_pieces"] == demo_pieces
    assert stats["pieces_embedded"] == demo_pieces  # the second call embedded nothing

    texts, demo_ids, group_ids = map(list, zip(*RESPONSES))
    out = get(scorer.data_hardness.remote(texts, demo_ids, group_ids))

    # Reference: the pure function on embeddings computed in this process.
    by_id = {d["id"]: d["text"] for d in DEMOS}
    resp = embed_pieces(encoder, texts)
    demo = embed_pieces(encoder, [by_id[i] for i in demo_ids])
    expected = data_hardness(resp.emb, resp.mask, demo.emb, demo.mask, torch.tensor(group_ids))

    for key, ref in [("alpha", expected.alpha), ("similarity", expected.similarity), ("delta", expected.delta)]:
        torch.testing.assert_close(torch.tensor(out[key]), ref, atol=1e-5, rtol=0, msg=key)
    assert out["num_pieces"] == [len(split_sub_sentences(t)) for t in texts]

    # Behaviour, not just plumbing: in each group a refusal is easier (lower α) than compliance.
    alpha = out["alpha"]
    assert alpha[0] < alpha[2] and alpha[1] < alpha[3]

    stats = get(scorer.stats.remote())
    assert stats["pieces_embedded"] == demo_pieces + sum(out["num_pieces"])
    assert stats["pieces_per_second"] > 0 and stats["dim"] == 384


def test_unknown_demo_id_is_a_key_error_naming_it(scorer, ray_local):
    ray_local.get(scorer.cache_demonstrations.remote(DEMOS))
    with pytest.raises(KeyError, match="'no-such-demo'.*cache_demonstrations"):
        ray_local.get(scorer.data_hardness.remote(["hello"], ["no-such-demo"], [0]))
    # The actor survives a bad request.
    assert ray_local.get(scorer.data_hardness.remote([], [], []))["alpha"] == []


def test_mismatched_lengths_are_rejected(scorer, ray_local):
    with pytest.raises(ValueError, match="one entry per response"):
        ray_local.get(scorer.data_hardness.remote(["a", "b"], ["demo-harm"], [0, 0]))


def test_a_restarted_scorer_has_its_demonstrations_again(ray_local):
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    from hair_ray.config import HardnessConfig
    from hair_ray.workers.scorer import create_hardness_scorer

    config = HardnessConfig(encoder="sentence_transformers", sentence_transformer=MINILM)
    handle = create_hardness_scorer(config, num_cpus=0.5, max_restarts=1, demonstrations=DEMOS)
    try:
        texts, demo_ids, group_ids = map(list, zip(*RESPONSES))
        before = ray_local.get(handle.data_hardness.remote(texts, demo_ids, group_ids), timeout=300)
        ray_local.kill(handle, no_restart=False)
        # Submitted to the dead actor: Ray restarts it (the constructor re-embeds the
        # demonstrations) and re-runs the call there.
        after = ray_local.get(handle.data_hardness.remote(texts, demo_ids, group_ids), timeout=300)
        assert after == before
        stats = ray_local.get(handle.stats.remote())
        assert stats["cached_demonstrations"] == len(DEMOS)
        # A fresh process: it embedded the demonstrations and one batch of responses, not two.
        demo_pieces = sum(len(split_sub_sentences(d["text"])) for d in DEMOS)
        assert stats["pieces_embedded"] == demo_pieces + sum(after["num_pieces"])
    finally:
        ray_local.kill(handle)
