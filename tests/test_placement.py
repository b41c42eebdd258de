"""The placement planner on hand-built clusters, and the Ray wrapper on the local cluster."""

from __future__ import annotations

import pytest

from hair_ray.config import load_config
from hair_ray.train.placement import (
    COLOCATED_GROUP,
    ClusterResources,
    NodeResources,
    PlacementError,
    actor_options,
    cluster_resources_from_ray,
    create_placement_groups,
    plan_placement,
    remove_placement_groups,
)

GPU_8B = [  # a typical 7B/8B recipe: 2 vLLM workers with TP 2, 4 ZeRO ranks, 7 small RMs
    "rollout.num_workers=2",
    "rollout.tensor_parallel_size=2",
    "placement.gpus_per_rollout_worker=1",
    "learner.num_workers=4",
    "learner.num_gpus_per_worker=1",
    "placement.cpus_per_reward_model=1",
]


def config(*overrides: str):
    return load_config(None, list(overrides))


def test_cpu_only_two_cores_default_plan_fits():
    plan = plan_placement(config(), ClusterResources.uniform(1, num_cpus=2))
    assert plan.mode == "split"
    assert plan.bundles("rollout") == ({"CPU": 1.0},)
    assert plan.bundles("learner") == ({"CPU": 1.0},)
    assert plan.strategy("learner") == "PACK"
    # 0 CPUs and 0 GPUs: no group (Ray refuses all-zero bundles), the actors run anywhere.
    assert plan.group_for("reward") is None and plan.group_for("scorer") is None
    assert plan.roles["reward"].num_actors == 7
    assert plan.total("CPU") == 2 and plan.total("GPU") == 0
    assert not plan.shares_group("rollout", "learner")
    assert "rollout" in plan.describe()


def test_colocated_reward_models_are_one_actor_asking_seven_models_worth():
    plan = plan_placement(config(*GPU_8B, "reward.colocate=true"), ClusterResources.uniform(1, num_cpus=32, num_gpus=8))
    assert plan.roles["reward"].num_actors == 1
    assert plan.bundles("reward") == ({"CPU": 7.0},)
    plan = plan_placement(
        config("reward.colocate=true", "reward.num_gpus_per_model=0.1"), ClusterResources.uniform(1, num_cpus=2, num_gpus=1)
    )
    assert plan.roles["reward"].gpus_per_actor == pytest.approx(0.7)
    with pytest.raises(PlacementError, match=r"asks 7 × reward.num_gpus_per_model = 1.4 GPUs"):
        plan_placement(
            config("reward.colocate=true", "reward.num_gpus_per_model=0.2"), ClusterResources.uniform(1, num_cpus=2, num_gpus=2)
        )


def test_cpu_only_two_cores_too_many_workers_names_the_cpu_fields():
    with pytest.raises(PlacementError) as err:
        plan_placement(config("learner.num_workers=2", "rollout.num_workers=2"), ClusterResources.uniform(1, num_cpus=2))
    message = str(err.value)
    assert "the plan needs 4 CPUs (rollout 2 × 1 = 2, learner 2 × 1 = 2" in message
    assert "but the cluster has 2: add 2 CPUs" in message
    assert "placement.cpus_per_rollout_worker" in message


def test_one_node_with_eight_gpus():
    plan = plan_placement(config(*GPU_8B), ClusterResources.uniform(1, num_cpus=32, num_gpus=8))
    assert plan.bundles("rollout") == ({"CPU": 1.0, "GPU": 2.0},) * 2
    assert plan.bundles("learner") == ({"CPU": 1.0, "GPU": 1.0},) * 4
    assert plan.bundles("reward") == ({"CPU": 1.0},) * 7
    assert plan.roles["rollout"].gpus_per_actor == 2
    assert plan.roles["learner"].bundle_indices == (0, 1, 2, 3)
    assert plan.total("GPU") == 8
    assert plan.warnings == ()


def test_two_nodes_with_eight_gpus_each_fractional_reward_models():
    plan = plan_placement(
        config(
            *GPU_8B,
            "rollout.num_workers=2",
            "learner.num_workers=8",
            "reward.num_gpus_per_model=0.5",
            "placement.gpus_per_scorer=0.5",
            "placement.group_strategy=SPREAD",
        ),
        ClusterResources.uniform(2, num_cpus=64, num_gpus=8),
    )
    assert plan.total("GPU") == pytest.approx(16)
    assert plan.bundles("reward")[0] == {"CPU": 1.0, "GPU": 0.5}
    assert plan.bundles("scorer") == ({"GPU": 0.5},)
    assert {plan.strategy(role) for role in ("rollout", "learner", "reward", "scorer")} == {"SPREAD"}


def test_too_few_gpus_says_what_is_missing():
    with pytest.raises(PlacementError) as err:
        plan_placement(config(*GPU_8B, "placement.cpus_per_reward_model=0"), ClusterResources.uniform(1, num_cpus=32, num_gpus=4))
    assert str(err.value) == (
        "the plan needs 8 GPUs (rollout 2 × TP 2 = 4, learner 4 × 1 = 4, reward 7 × 0 = 0, scorer 1 × 0 = 0) "
        "but the cluster has 4: add 4 GPUs or lower rollout.num_workers / learner.num_workers"
    )


def test_tensor_parallel_larger_than_any_node():
    with pytest.raises(PlacementError) as err:
        plan_placement(
            config(*GPU_8B, "rollout.num_workers=1", "rollout.tensor_parallel_size=4", "learner.num_workers=2"),
            ClusterResources.uniform(4, num_cpus=16, num_gpus=2),
        )
    assert "rollout.tensor_parallel_size = 4 needs 4 GPUs on one node; the largest node has 2" in str(err.value)
    assert "the plan needs" not in str(err.value)  # 6 GPUs of 8: the total is fine


def test_colocated_learner_and_rollout_share_gpus():
    cfg = config(
        "placement.strategy=colocated",
        "rollout.num_workers=4",
        "learner.num_workers=4",
        "placement.gpus_per_rollout_worker=0.5",
        "learner.num_gpus_per_worker=0.5",
    )
    plan = plan_placement(cfg, ClusterResources.uniform(1, num_cpus=16, num_gpus=4))
    assert plan.mode == "colocated" and plan.shares_group("rollout", "learner")
    assert plan.roles["learner"].group == plan.roles["rollout"].group == COLOCATED_GROUP
    # One whole GPU per shared bundle, the CPUs of both roles.
    assert plan.bundles("learner") == ({"CPU": 2.0, "GPU": 1.0},) * 4
    assert plan.roles["rollout"].gpus_per_actor == 0.5
    assert plan.total("GPU") == 4


def test_colocated_refuses_more_than_one_gpu_per_bundle_and_tensor_parallel():
    too_much = config("placement.strategy=colocated", "placement.gpus_per_rollout_worker=0.6", "learner.num_gpus_per_worker=0.6")
    with pytest.raises(PlacementError, match=r"0.6 \+ 0.6 = 1.2 > 1"):
        plan_placement(too_much, ClusterResources.uniform(1, num_cpus=8, num_gpus=1))
    tp = config(
        "placement.strategy=colocated",
        "rollout.tensor_parallel_size=2",
        "placement.gpus_per_rollout_worker=1",
        "learner.num_gpus_per_worker=0.5",
    )
    with pytest.raises(PlacementError, match="rollout.tensor_parallel_size must be 1"):
        plan_placement(tp, ClusterResources.uniform(1, num_cpus=8, num_gpus=8))


def test_shape_errors_and_strict_pack():
    with pytest.raises(PlacementError, match="learner.num_gpus_per_worker = 1.5"):
        plan_placement(config("learner.num_gpus_per_worker=1.5"), ClusterResources.uniform(1, 8, 8))
    with pytest.raises(PlacementError, match="placement.gpus_per_rollout_worker = 1"):
        plan_placement(
            config("rollout.tensor_parallel_size=2", "placement.gpus_per_rollout_worker=0.5"), ClusterResources.uniform(1, 8, 8)
        )
    strict = config(*GPU_8B, "placement.group_strategy=STRICT_PACK", "learner.num_workers=8")
    with pytest.raises(PlacementError, match="STRICT_PACK puts the whole learner group"):
        plan_placement(strict, ClusterResources.uniform(2, num_cpus=32, num_gpus=6))


def test_bundles_that_fit_only_in_total_get_a_warning():
    # 3 TP-3 workers on two 5-GPU nodes: 10 GPUs in total, but the third TP bundle has no home.
    cfg = config(
        "rollout.num_workers=3",
        "rollout.tensor_parallel_size=3",
        "placement.gpus_per_rollout_worker=1",
        "learner.num_workers=1",
        "learner.num_gpus_per_worker=1",
        "algo.prompts_per_step=3",
    )
    plan = plan_placement(cfg, ClusterResources.uniform(2, num_cpus=16, num_gpus=5))
    assert plan.warnings and "first-fit" in plan.warnings[0]


def test_cpu_bundle_wider_than_every_node():
    cluster = ClusterResources((NodeResources("a", "10.0.0.1", 2, 0), NodeResources("b", "10.0.0.2", 2, 0)))
    with pytest.raises(PlacementError, match=r"needs 3 CPUs \(placement.cpus_per_learner_worker\) on one node"):
        plan_placement(config("placement.cpus_per_learner_worker=3", "placement.cpus_per_rollout_worker=0.5"), cluster)


# ---------------------------------------------------------------------------------------------
# On the local Ray cluster


def test_create_groups_on_local_ray_and_schedule_into_them(ray_local):
    ray = ray_local
    cluster = cluster_resources_from_ray()
    assert cluster.total_cpus == 2 and cluster.total_gpus == 0
    cfg = config(
        "placement.cpus_per_rollout_worker=0.25",
        "placement.cpus_per_learner_worker=0.25",
        "placement.cpus_per_scorer=0.25",
        "learner.num_workers=2",
    )
    plan = plan_placement(cfg, cluster)
    groups = create_placement_groups(plan, timeout_s=60, name_prefix="test-placement")
    try:
        assert set(groups) == {"rollout", "learner", "scorer"}
        assert groups["learner"].bundle_specs == [{"CPU": 0.25}, {"CPU": 0.25}]

        @ray.remote
        def where() -> str:
            return ray.get_runtime_context().get_placement_group_id()

        options = actor_options(plan, groups, "learner", 1)
        assert options["num_cpus"] == 0.25
        assert ray.get(where.options(**options).remote(), timeout=60) == groups["learner"].id.hex()
        assert "scheduling_strategy" not in actor_options(plan, groups, "reward", 6)
    finally:
        remove_placement_groups(groups)


def test_a_group_that_cannot_be_placed_names_its_role(ray_local):
    # Planned against an imaginary 64-core cluster, created on the 2-core one.
    cfg = config("placement.cpus_per_rollout_worker=0.25", "placement.cpus_per_learner_worker=8")
    plan = plan_placement(cfg, ClusterResources.uniform(1, num_cpus=64))
    with pytest.raises(PlacementError, match=r"placement group of learner .*within 1 s"):
        create_placement_groups(plan, timeout_s=1, name_prefix="test-timeout")
