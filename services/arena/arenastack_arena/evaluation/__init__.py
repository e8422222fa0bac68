"""The pure core of the LLM-as-a-judge pairwise evaluation runner.

No I/O and no network: prompts from JSON lines, the judge prompt with fenced
untrusted answers, verdict parsing and combination of both orders, battle
identities and plans, adaptive pair sampling (and its simulator), and judge
agreement measures. The runner around it generates answers, calls the judge
and posts games to the arena service.

The runner (``python -m arenastack_arena.evaluation --config run.json``, the
ArenaEvaluation Job) lives in the modules this package does not import:
config (run.json), planning, judging, pipeline (the asyncio pipeline),
openai_client, arena_client, kube_status, report, runner and __main__.
"""

from arenastack_arena.evaluation.agreement import (
    Agreement,
    Consistency,
    Rate,
    agreement,
    paired,
    position_consistency,
    self_enhancement,
)
from arenastack_arena.evaluation.identity import (
    ORDER_AB,
    ORDER_BA,
    ORDERS,
    Battle,
    Judgment,
    Plan,
    all_pairs,
    battle_id,
    judgment_id,
)
from arenastack_arena.evaluation.prompts import Prompt, PromptError, parse_jsonl
from arenastack_arena.evaluation.sampling import (
    AdaptiveSampler,
    Sampler,
    Tally,
    UniformSampler,
    fit_strengths,
    make_sampler,
)
from arenastack_arena.evaluation.scales import FIVE, THREE, get_scale
from arenastack_arena.evaluation.simulation import (
    Recovery,
    Simulation,
    battles_to_recover,
    kendall_tau,
    simulate,
)
from arenastack_arena.evaluation.template import (
    DEFAULT_TEMPLATE,
    JudgeRequest,
    JudgeTemplate,
    TemplateError,
    render,
    verdict_json_schema,
    verdict_line,
)
from arenastack_arena.evaluation.verdicts import (
    RULE_BOTH,
    RULE_TIE,
    Combined,
    Game,
    Verdict,
    VerdictParseError,
    combine,
    mirror,
    parse_verdict,
    score_a,
    weight,
)

__all__ = [
    "DEFAULT_TEMPLATE",
    "FIVE",
    "ORDERS",
    "ORDER_AB",
    "ORDER_BA",
    "RULE_BOTH",
    "RULE_TIE",
    "THREE",
    "AdaptiveSampler",
    "Agreement",
    "Battle",
    "Combined",
    "Consistency",
    "Game",
    "JudgeRequest",
    "JudgeTemplate",
    "Judgment",
    "Plan",
    "Prompt",
    "PromptError",
    "Rate",
    "Recovery",
    "Sampler",
    "Simulation",
    "Tally",
    "TemplateError",
    "UniformSampler",
    "Verdict",
    "VerdictParseError",
    "agreement",
    "all_pairs",
    "battle_id",
    "battles_to_recover",
    "combine",
    "fit_strengths",
    "get_scale",
    "judgment_id",
    "kendall_tau",
    "make_sampler",
    "mirror",
    "paired",
    "parse_jsonl",
    "parse_verdict",
    "position_consistency",
    "render",
    "score_a",
    "self_enhancement",
    "simulate",
    "verdict_json_schema",
    "verdict_line",
    "weight",
]
