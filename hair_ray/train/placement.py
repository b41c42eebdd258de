"""Placement: which Ray resources each role reserves, planned from the config before any actor starts.

`plan_placement` is a pure function of the config and a description of the cluster: it builds
one placement group per role (`placement.strategy: split`) or one group that the learner and the
rollout workers share (`colocated`: each shared bundle holds one GPU that a learner rank and a
rollout worker split in fractions), and refuses, with a message naming the fields to change, a
plan the cluster cannot hold. The Ray side (`create_placement_groups`, `actor_options`) is a thin
wrapper over `ray.util.placement_group` and stays out of the planner so it can be unit-tested on
hand-built clusters.

Roles and their actors:

    rollout  rollout.num_workers × {CPU: cpus_per_rollout_worker, GPU: gpus_per_rollout_worker × TP}
    learner  learner.num_workers × {CPU: cpus_per_learner_worker, GPU: learner.num_gpus_per_worker}
    reward   7 (one per category) × {CPU: cpus_per_reward_model, GPU: reward.num_gpus_per_model},
             or with reward.colocate 1 × {CPU: 7 × cpus_per_reward_model, GPU: 7 × num_gpus_per_model}
    scorer   1 × {CPU: cpus_per_scorer, GPU: gpus_per_scorer}

A rollout worker's tensor-parallel GPUs form one bundle: Ray never splits a bundle across nodes,
so the TP ranks share a node (and its NVLink) whatever the group strategy; STRICT_PACK would put
every worker of the group on one node, which is `placement.group_strategy`'s job, not TP's.
A role that reserves nothing (0 CPUs and 0 GPUs, the CPU defaults for reward and scorer) gets no
group: Ray refuses all-zero bundles, and such actors can run anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hair_ray.train.preflight import served_reward_models

if TYPE_CHECKING:
    from ray.util.placement_group import PlacementGroup

    from hair_ray.config import RunConfig

Role = Literal["rollout", "learner", "reward", "scorer"]
ROLES: tuple[Role, ...] = ("rollout", "learner", "reward", "scorer")
COLOCATED_GROUP = "colocated"  # the group name learner and rollout share in colocated mode
_EPS = 1e-9  # resource sums are floats (7 × 0.1 GPU): compare with a tolerance

# The fields a user lowers when a resource runs short, per role.
_GPU_FIELDS = {
    "rollout": "rollout.num_workers",
    "learner": "learner.num_workers",
    "reward": "reward.num_gpus_per_model",
    "scorer": "placement.gpus_per_scorer",
}
_CPU_FIELDS = {
    "rollout": "placement.cpus_per_rollout_worker",
    "learner": "placement.cpus_per_learner_worker",
    "reward": "placement.cpus_per_reward_model",
    "scorer": "placement.cpus_per_scorer",
}


class PlacementError(RuntimeError):
    """The cluster cannot hold the plan, or a group could not be placed in time."""


# ---------------------------------------------------------------------------------------------
# The cluster


@dataclass(frozen=True)
class NodeResources:
    node_id: str
    address: str
    num_cpus: float
    num_gpus: float


@dataclass(frozen=True)
class ClusterResources:
    nodes: tuple[NodeResources, ...]

    @classmethod
    def uniform(cls, num_nodes: int, num_cpus: float, num_gpus: float = 0.0) -> ClusterResources:
        """`num_nodes` identical nodes (tests, and quick what-if checks)."""
        return cls(tuple(NodeResources(f"node-{i}", f"10.0.0.{i + 1}", num_cpus, num_gpus) for i in range(num_nodes)))

    @property
    def total_cpus(self) -> float:
        return sum(node.num_cpus for node in self.nodes)

    @property
    def total_gpus(self) -> float:
        return sum(node.num_gpus for node in self.nodes)

    @property
    def max_node_cpus(self) -> float:
        return max((node.num_cpus for node in self.nodes), default=0.0)

    @property
    def max_node_gpus(self) -> float:
        return max((node.num_gpus for node in self.nodes), default=0.0)


def cluster_resources_from_ray() -> ClusterResources:
    """The alive nodes of the connected Ray cluster, with their total (not free) CPUs and GPUs.

    Totals, because the plan is checked before this run holds anything; resources that other
    jobs hold show up later as a group that cannot be placed within `group_timeout_s`.
    """
    import ray

    nodes = [
        NodeResources(
            node_id=str(node.get("NodeID", "")),
            address=str(node.get("NodeManagerAddress", "")),
            num_cpus=float(node.get("Resources", {}).get("CPU", 0.0)),
            num_gpus=float(node.get("Resources", {}).get("GPU", 0.0)),
        )
        for node in ray.nodes()
        if node.get("Alive", False)
    ]
    return ClusterResources(tuple(nodes))


# ---------------------------------------------------------------------------------------------
# The plan


Bundle = dict[str, float]


@dataclass(frozen=True)
class GroupPlan:
    """One placement group: its bundles, strategy and the roles whose actors live in it."""

    name: str
    bundles: tuple[Bundle, ...]
    strategy: str
    roles: tuple[Role, ...]

    def total(self, resource: str) -> float:
        return sum(bundle.get(resource, 0.0) for bundle in self.bundles)


@dataclass(frozen=True)
class RolePlan:
    """A role's actors: how many, what each asks Ray for, and where (group and bundle index)."""

    role: Role
    num_actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    group: str | None  # None: the role reserves nothing and runs outside any group
    bundle_indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlacementPlan:
    mode: Literal["split", "colocated"]
    roles: dict[str, RolePlan]
    groups: dict[str, GroupPlan]
    warnings: tuple[str, ...] = field(default=())

    def group_for(self, role: Role) -> GroupPlan | None:
        name = self.roles[role].group
        return self.groups[name] if name is not None else None

    def bundles(self, role: Role) -> tuple[Bundle, ...]:
        """The bundles of the role's group (shared with the other role when colocated)."""
        group = self.group_for(role)
        return group.bundles if group is not None else ()

    def strategy(self, role: Role) -> str | None:
        group = self.group_for(role)
        return group.strategy if group is not None else None

    def shares_group(self, role: Role, other: Role) -> bool:
        mine = self.roles[role].group
        return mine is not None and mine == self.roles[other].group

    def total(self, resource: str) -> float:
        """What the whole plan reserves of `resource` ("CPU" or "GPU")."""
        return sum(group.total(resource) for group in self.groups.values())

    def describe(self) -> str:
        """A few lines for the run log: one per role."""
        lines = [f"placement ({self.mode}): {_fmt(self.total('CPU'))} CPUs, {_fmt(self.total('GPU'))} GPUs"]
        for role in ROLES:
            plan = self.roles[role]
            where = f"group {plan.group!r} ({self.groups[plan.group].strategy})" if plan.group else "no group"
            lines.append(
                f"  {role:8s} {plan.num_actors} × {{CPU: {_fmt(plan.cpus_per_actor)}, GPU: {_fmt(plan.gpus_per_actor)}}}, {where}"
            )
        lines.extend(f"  warning: {text}" for text in self.warnings)
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{round(value, 6):g}"


def _bundle(cpus: float, gpus: float) -> Bundle:
    # Ray rejects bundles whose values are all 0; leaving zero keys out keeps them readable.
    return {key: float(value) for key, value in (("CPU", cpus), ("GPU", gpus)) if value > 0}


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) < _EPS


def plan_placement(config: RunConfig, cluster: ClusterResources) -> PlacementPlan:
    """Plan every role's placement group; raise `PlacementError` listing all that does not fit."""
    placement = config.placement
    tp = config.rollout.tensor_parallel_size
    actors = {
        "rollout": RolePlan(
            "rollout", config.rollout.num_workers, placement.cpus_per_rollout_worker, placement.gpus_per_rollout_worker * tp, None
        ),
        "learner": RolePlan(
            "learner", config.learner.num_workers, placement.cpus_per_learner_worker, config.learner.num_gpus_per_worker, None
        ),
        "reward": _reward_role(config),
        "scorer": RolePlan("scorer", 1, placement.cpus_per_scorer, placement.gpus_per_scorer, None),
    }
    problems = _shape_problems(config)
    if placement.strategy == "colocated":
        groups, roles = _colocated_groups(config, actors)
    else:
        groups, roles = {}, {}
        for role in ROLES:
            group, role_plan = _own_group(actors[role], placement.group_strategy)
            roles[role] = role_plan
            if group is not None:
                groups[group.name] = group
    plan = PlacementPlan(mode=placement.strategy, roles=roles, groups=groups)
    problems += _fit_problems(config, plan, cluster)
    if problems:
        raise PlacementError("\n".join(problems))
    warning = _first_fit_warning(plan, cluster)
    if warning:
        plan = PlacementPlan(mode=plan.mode, roles=plan.roles, groups=plan.groups, warnings=(warning,))
    return plan


def reward_model_count(config: RunConfig) -> int:
    return len(served_reward_models(config))


def _reward_role(config: RunConfig) -> RolePlan:
    """One actor a reward model (seven, eight with benign prompts), or one actor hosting all of
    them (`reward.colocate`)."""
    models = reward_model_count(config)
    actors, per_actor = (1, models) if config.reward.colocate else (models, 1)
    return RolePlan(
        "reward", actors, config.placement.cpus_per_reward_model * per_actor, config.reward.num_gpus_per_model * per_actor, None
    )


def _own_group(actor: RolePlan, strategy: str) -> tuple[GroupPlan | None, RolePlan]:
    """Split mode: the role's own group, one bundle per actor (or none when it reserves nothing)."""
    bundle = _bundle(actor.cpus_per_actor, actor.gpus_per_actor)
    if not bundle:
        return None, actor
    group = GroupPlan(actor.role, tuple(dict(bundle) for _ in range(actor.num_actors)), strategy, (actor.role,))
    placed = RolePlan(
        actor.role, actor.num_actors, actor.cpus_per_actor, actor.gpus_per_actor, actor.role, tuple(range(actor.num_actors))
    )
    return group, placed


def _colocated_groups(config: RunConfig, actors: dict[str, RolePlan]) -> tuple[dict[str, GroupPlan], dict[str, RolePlan]]:
    """Learner rank i and rollout worker i share bundle i (one GPU split in fractions).

    Reward and scorer keep their own groups: their models are small and long-lived, and
    sharing the policy GPUs with them would squeeze the KV cache.
    """
    learner, rollout = actors["learner"], actors["rollout"]
    slots = max(learner.num_actors, rollout.num_actors)
    uses_gpu = learner.gpus_per_actor > 0 or rollout.gpus_per_actor > 0
    bundles = []
    for i in range(slots):
        cpus = (learner.cpus_per_actor if i < learner.num_actors else 0.0) + (
            rollout.cpus_per_actor if i < rollout.num_actors else 0.0
        )
        # The whole GPU: colocation plans the GPU's memory between the two roles.
        bundles.append(_bundle(cpus, 1.0 if uses_gpu else 0.0))
    group = GroupPlan(COLOCATED_GROUP, tuple(bundles), config.placement.group_strategy, ("rollout", "learner"))
    groups = {COLOCATED_GROUP: group}
    roles: dict[str, RolePlan] = {}
    for actor in (rollout, learner):
        roles[actor.role] = RolePlan(
            actor.role,
            actor.num_actors,
            actor.cpus_per_actor,
            actor.gpus_per_actor,
            COLOCATED_GROUP,
            tuple(range(actor.num_actors)),
        )
    for role in ("reward", "scorer"):
        own, roles[role] = _own_group(actors[role], config.placement.group_strategy)
        if own is not None:
            groups[own.name] = own
    return groups, {role: roles[role] for role in ROLES}


def _shape_problems(config: RunConfig) -> list[str]:
    """Per-actor requests that no cluster could satisfy (independent of its size)."""
    problems = []
    placement, tp = config.placement, config.rollout.tensor_parallel_size
    gpw = placement.gpus_per_rollout_worker
    if tp > 1 and gpw > 0 and abs(gpw - 1.0) > _EPS:
        problems.append(
            f"rollout.tensor_parallel_size = {tp} needs placement.gpus_per_rollout_worker = 1 "
            f"(one whole GPU per tensor-parallel rank), got {_fmt(gpw)}"
        )
    # Ray grants fractions of one GPU, or whole GPUs: 1.5 is not a request it can meet.
    for name, value in (
        ("learner.num_gpus_per_worker", config.learner.num_gpus_per_worker),
        ("reward.num_gpus_per_model", config.reward.num_gpus_per_model),
        ("placement.gpus_per_scorer", placement.gpus_per_scorer),
        ("placement.gpus_per_rollout_worker", gpw),
    ):
        if value > 1 and not _is_whole(value):
            problems.append(f"{name} = {_fmt(value)}: Ray grants a fraction of one GPU or whole GPUs, not {_fmt(value)}")
    reward_models = reward_model_count(config)
    colocated_reward_gpus = reward_models * config.reward.num_gpus_per_model
    if config.reward.colocate and colocated_reward_gpus > 1 and not _is_whole(colocated_reward_gpus):
        problems.append(
            f"reward.colocate hosts the {reward_models} reward models in one actor, which asks "
            f"{reward_models} × reward.num_gpus_per_model = "
            f"{_fmt(colocated_reward_gpus)} GPUs: Ray grants a fraction of one GPU or whole GPUs "
            f"(e.g. reward.num_gpus_per_model = 0.1, which asks 0.7)"
        )
    if placement.strategy == "colocated":
        learner_gpus = config.learner.num_gpus_per_worker
        if tp > 1:
            problems.append(
                f"placement.strategy = colocated shares one bundle per learner rank and engine, so rollout.tensor_parallel_size "
                f"must be 1 (got {tp}); use placement.strategy = split for tensor-parallel rollout"
            )
        elif learner_gpus + gpw > 1 + _EPS:
            problems.append(
                f"placement.strategy = colocated puts a learner rank and a rollout worker on one GPU: "
                f"learner.num_gpus_per_worker + placement.gpus_per_rollout_worker = "
                f"{_fmt(learner_gpus)} + {_fmt(gpw)} = {_fmt(learner_gpus + gpw)} > 1 (e.g. use 0.5 + 0.5)"
            )
    return problems


def _term(config: RunConfig, plan: RolePlan, resource: str) -> str:
    """'rollout 2 × TP 2 = 4': one role's share of a total, as the user configured it."""
    per = plan.gpus_per_actor if resource == "GPU" else plan.cpus_per_actor
    tp = config.rollout.tensor_parallel_size
    if plan.role == "rollout" and resource == "GPU" and tp > 1 and per > 0:
        return f"rollout {plan.num_actors} × TP {tp} = {_fmt(plan.num_actors * per)}"
    return f"{plan.role} {plan.num_actors} × {_fmt(per)} = {_fmt(plan.num_actors * per)}"


def _total_problem(config: RunConfig, plan: PlacementPlan, cluster: ClusterResources, resource: str) -> str | None:
    need = plan.total(resource)
    have = cluster.total_gpus if resource == "GPU" else cluster.total_cpus
    if need <= have + _EPS:
        return None
    noun = "GPUs" if resource == "GPU" else "CPUs"
    terms = []
    for role in ROLES:
        if plan.mode == "colocated" and role in ("rollout", "learner") and resource == "GPU":
            if role == "rollout":
                shared = plan.groups[COLOCATED_GROUP]
                terms.append(f"rollout+learner colocated {len(shared.bundles)} × 1 = {_fmt(shared.total('GPU'))}")
            continue
        terms.append(_term(config, plan.roles[role], resource))
    fields = _GPU_FIELDS if resource == "GPU" else _CPU_FIELDS
    per = (lambda p: p.gpus_per_actor) if resource == "GPU" else (lambda p: p.cpus_per_actor)
    hints = [fields[role] for role in ROLES if per(plan.roles[role]) > 0]
    return (
        f"the plan needs {_fmt(need)} {noun} ({', '.join(terms)}) but the cluster has {_fmt(have)}: "
        f"add {_fmt(need - have)} {noun} or lower {' / '.join(hints)}"
    )


def _fits(node: NodeResources, bundle: Bundle) -> bool:
    return bundle.get("CPU", 0.0) <= node.num_cpus + _EPS and bundle.get("GPU", 0.0) <= node.num_gpus + _EPS


def _bundle_problem(config: RunConfig, group: GroupPlan, bundle: Bundle, cluster: ClusterResources) -> str | None:
    """A bundle lives on one node: some node must hold all of it."""
    if any(_fits(node, bundle) for node in cluster.nodes):
        return None
    gpus, cpus = bundle.get("GPU", 0.0), bundle.get("CPU", 0.0)
    owner = "+".join(group.roles)
    tp = config.rollout.tensor_parallel_size
    if gpus > cluster.max_node_gpus + _EPS:
        if group.roles == ("rollout",) and tp > 1:
            return f"rollout.tensor_parallel_size = {tp} needs {_fmt(gpus)} GPUs on one node; the largest node has {_fmt(cluster.max_node_gpus)}"
        return f"a {owner} bundle needs {_fmt(gpus)} GPUs on one node; the largest node has {_fmt(cluster.max_node_gpus)}"
    if cpus > cluster.max_node_cpus + _EPS:
        fields = " + ".join(_CPU_FIELDS[role] for role in group.roles)
        return (
            f"a {owner} bundle needs {_fmt(cpus)} CPUs ({fields}) on one node; the largest node has {_fmt(cluster.max_node_cpus)}"
        )
    return f"a {owner} bundle {bundle} fits no single node: no node has {_fmt(cpus)} CPUs and {_fmt(gpus)} GPUs together"


def _fit_problems(config: RunConfig, plan: PlacementPlan, cluster: ClusterResources) -> list[str]:
    if not cluster.nodes:
        return ["the Ray cluster has no alive nodes"]
    problems = [p for p in (_total_problem(config, plan, cluster, r) for r in ("GPU", "CPU")) if p]
    for group in plan.groups.values():
        shapes = {tuple(sorted(bundle.items())) for bundle in group.bundles}
        problems += [p for p in (_bundle_problem(config, group, dict(s), cluster) for s in sorted(shapes)) if p]
        if group.strategy == "STRICT_PACK":
            whole = {"CPU": group.total("CPU"), "GPU": group.total("GPU")}
            if not any(_fits(node, whole) for node in cluster.nodes):
                problems.append(
                    f"placement.group_strategy = STRICT_PACK puts the whole {group.name} group "
                    f"({_fmt(whole['CPU'])} CPUs, {_fmt(whole['GPU'])} GPUs) on one node; the largest node has "
                    f"{_fmt(cluster.max_node_cpus)} CPUs and {_fmt(cluster.max_node_gpus)} GPUs: use PACK"
                )
    return problems


def _first_fit_warning(plan: PlacementPlan, cluster: ClusterResources) -> str | None:
    """Totals and single bundles fit; check the bundles together, first-fit decreasing.

    A heuristic: when it fails a placement may still exist, so this is a warning (Ray then
    either finds one or the group times out with the role named).
    """
    free = [[node.num_cpus, node.num_gpus] for node in cluster.nodes]
    items: list[tuple[str, Bundle]] = []
    for group in plan.groups.values():
        if group.strategy == "STRICT_PACK":
            items.append((group.name, {"CPU": group.total("CPU"), "GPU": group.total("GPU")}))
        else:
            items += [(group.name, bundle) for bundle in group.bundles]
    items.sort(key=lambda item: (item[1].get("GPU", 0.0), item[1].get("CPU", 0.0)), reverse=True)
    for name, bundle in items:
        cpus, gpus = bundle.get("CPU", 0.0), bundle.get("GPU", 0.0)
        for slot in free:
            if cpus <= slot[0] + _EPS and gpus <= slot[1] + _EPS:
                slot[0] -= cpus
                slot[1] -= gpus
                break
        else:
            return (
                f"the {name} bundle {bundle} did not fit beside the others in a first-fit packing of the "
                f"nodes; Ray may still place it, or time out after placement.group_timeout_s"
            )
    return None


# ---------------------------------------------------------------------------------------------
# Ray


def create_placement_groups(
    plan: PlacementPlan, *, timeout_s: float = 300.0, name_prefix: str = "hair_ray"
) -> dict[str, PlacementGroup]:
    """Create every group of the plan and wait for all of them; map each role to its group.

    Roles without a group (they reserve nothing) are absent; colocated roles map to one shared
    group. On timeout every group created here is removed again and the error names the roles
    whose group could not be placed, with what the cluster has free.
    """
    import ray
    from ray.util.placement_group import placement_group

    created: dict[str, PlacementGroup] = {}
    try:
        for name, group in plan.groups.items():
            created[name] = placement_group(
                [dict(b) for b in group.bundles], strategy=group.strategy, name=f"{name_prefix}-{name}"
            )
    except BaseException:
        remove_placement_groups(created)
        raise
    if not created:
        return {}
    pending = {pg.ready(): name for name, pg in created.items()}
    _, not_ready = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    if not_ready:
        missing = [pending[ref] for ref in not_ready]
        remove_placement_groups(created)
        free = ray.available_resources()
        details = "; ".join(
            f"{'+'.join(plan.groups[n].roles)} ({len(plan.groups[n].bundles)} × {plan.groups[n].bundles[0]}, {plan.groups[n].strategy})"
            for n in missing
        )
        raise PlacementError(
            f"could not place the placement group of {details} within {_fmt(timeout_s)} s "
            f"(placement.group_timeout_s); free now: {_fmt(free.get('CPU', 0.0))} CPUs, "
            f"{_fmt(free.get('GPU', 0.0))} GPUs. Other jobs or actors may hold them: see `ray status`"
        )
    return {role: created[rp.group] for role, rp in plan.roles.items() if rp.group is not None}


def remove_placement_groups(groups: dict[str, PlacementGroup]) -> None:
    """Remove each distinct group once (colocated roles share one)."""
    from ray.util.placement_group import remove_placement_group

    seen = set()
    for pg in groups.values():
        if pg.id not in seen:
            seen.add(pg.id)
            remove_placement_group(pg)


def scheduling_strategy(pg: PlacementGroup, bundle_index: int, *, capture_child_tasks: bool = False) -> Any:
    """The `scheduling_strategy` option that pins an actor to one bundle of `pg`."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(
        placement_group=pg,
        placement_group_bundle_index=bundle_index,
        placement_group_capture_child_tasks=capture_child_tasks,
    )


def actor_options(plan: PlacementPlan, groups: dict[str, PlacementGroup], role: Role, index: int) -> dict[str, Any]:
    """`ActorClass.options(**actor_options(plan, groups, "learner", rank))` for actor `index` of `role`."""
    rp = plan.roles[role]
    if not 0 <= index < rp.num_actors:
        raise IndexError(f"{role} has {rp.num_actors} actors in the plan; index {index} is out of range")
    options: dict[str, Any] = {"num_cpus": rp.cpus_per_actor, "num_gpus": rp.gpus_per_actor}
    if rp.group is not None:
        options["scheduling_strategy"] = scheduling_strategy(groups[role], rp.bundle_indices[index])
    return options
