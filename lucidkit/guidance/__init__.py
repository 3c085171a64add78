"""Score distillation guidance: ISM (the method), SDS (the baseline), view prompts and Perp-Neg."""

from lucidkit.guidance.score import GuidanceConfig, ScoreDistillation

__all__ = ["GuidanceConfig", "ScoreDistillation"]
