"""Captions of the toy world, and the way back: prompt -> attributes -> ground-truth Gaussians.

A caption names the object ("a red cube", "a blue and white checkered sphere", "a house") and, on most training
samples, the view seen from the camera's azimuth a (degrees, 0 = the object's front, +x):
``|a| <= 45`` -> ", front view"; ``|a| >= 135`` -> ", back view"; otherwise ", side view".
Training captions: P_EMPTY (10%) are empty (for classifier-free guidance), P_NO_VIEW (20%) have no view suffix,
the rest carry the suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from lucidkit.errors import UserError
from lucidkit.toyworld.objects import ALL_SHAPES, COLOURS, ORIENTED, PATTERN_COLOURS, PATTERNS, ToyObject, build

VIEWS = ("front", "side", "back")
P_EMPTY = 0.10
P_NO_VIEW = 0.20

# Words a prompt may use for a pattern, and the pattern they mean.
_PATTERN_WORDS = {
    "striped": "striped", "stripes": "striped", "stripy": "striped",
    "checkered": "checkered", "chequered": "checkered", "checked": "checkered", "checkerboard": "checkered",
}


class ToyPromptError(UserError):
    """A prompt that names no object of the toy world."""


def view_of_azimuth(azimuth_deg: float) -> str:
    """"front" (|a| <= 45), "back" (|a| >= 135) or "side" for an azimuth in degrees (any range; wrapped)."""
    a = abs((float(azimuth_deg) + 180.0) % 360.0 - 180.0)
    if a <= 45.0:
        return "front"
    if a >= 135.0:
        return "back"
    return "side"


def views_of_azimuths(azimuth_deg: Tensor) -> Tensor:
    """[B] long view index (0 front, 1 side, 2 back) for azimuths [B] in degrees; the rule of `view_of_azimuth`."""
    a = (torch.remainder(azimuth_deg.float() + 180.0, 360.0) - 180.0).abs()
    return torch.where(a <= 45.0, 0, torch.where(a >= 135.0, 2, 1)).long()


def with_view(prompt: str, view: Optional[str]) -> str:
    """"a house" + "back" -> "a house, back view"; ``view`` None leaves the prompt as it is."""
    return prompt if view is None else f"{prompt}, {view} view"


def caption(obj: ToyObject, azimuth_deg: float, u: float) -> str:
    """The training caption of ``obj`` seen from ``azimuth_deg``, chosen by a uniform number ``u`` in [0, 1):
    empty below P_EMPTY, no view suffix below P_EMPTY + P_NO_VIEW, the view suffix otherwise."""
    if u < P_EMPTY:
        return ""
    if u < P_EMPTY + P_NO_VIEW:
        return obj.prompt
    return with_view(obj.prompt, view_of_azimuth(azimuth_deg))


def caption_table(objects: list[ToyObject]) -> tuple[list[str], Tensor]:
    """Every training caption once, and where to find each: ``captions[0] == ""``; ``table [n_objects, 4]``
    holds the caption index of each object without suffix (column 0) and with the front/side/back suffix (1-3)."""
    captions = [""]
    table = torch.zeros(len(objects), 4, dtype=torch.long)
    for i, obj in enumerate(objects):
        for j, view in enumerate((None,) + VIEWS):
            table[i, j] = len(captions)
            captions.append(with_view(obj.prompt, view))
    return captions, table


def sample_caption_ids(table: Tensor, object_index: Tensor, azimuth_deg: Tensor, u: Tensor) -> Tensor:
    """[B] caption indices for a batch (object_index [B], azimuth_deg [B], u [B] uniform): the rule of `caption`."""
    view_column = 1 + views_of_azimuths(azimuth_deg).to(table.device)  # [B] in 1..3
    column = torch.where(u < P_EMPTY + P_NO_VIEW, 0, view_column)
    ids = table[object_index, column]  # [B]
    return torch.where(u < P_EMPTY, 0, ids)


@dataclass(frozen=True)
class Attributes:
    """What a prompt says about the toy world. Fields are None where the prompt does not say."""

    shape: Optional[str] = None  # one of ALL_SHAPES
    colour: Optional[str] = None  # first colour (COLOURS, or "white" when a prompt says so)
    colour2: Optional[str] = None  # second colour of a pattern
    pattern: Optional[str] = None  # "plain", "striped" or "checkered"; None for oriented objects
    view: Optional[str] = None  # "front", "side" or "back" when the prompt names a view

    @property
    def oriented(self) -> bool:
        return self.shape in ORIENTED

    def object(self) -> ToyObject:
        """The toy object the prompt names; raises ToyPromptError when it names none (or an impossible one)."""
        if self.shape is None:
            raise ToyPromptError(
                f"the prompt names no toy-world object; expected e.g. 'a red cube' (shapes: {', '.join(ALL_SHAPES)})"
            )
        if self.oriented:
            return ToyObject(self.shape)
        if self.colour is None:
            raise ToyPromptError(f"the prompt names a {self.shape} but no colour; expected one of {', '.join(COLOURS)}")
        obj = ToyObject(self.shape, self.colour, self.pattern or "plain", self.colour2)
        try:
            return obj.validate()
        except ValueError as e:
            raise ToyPromptError(f"the prompt does not name a toy-world object: {e}") from None


def parse_prompt(text: str) -> Attributes:
    """Read shape, colours, pattern and view from a prompt ("a blue and white checkered sphere, back view").

    Tolerant: words it does not know are ignored, so "a DSLR photo of a red cube" reads as a red cube. Colours are
    taken in the order they appear; a pattern needs two. Oriented objects (house, penguin) carry no colour.
    """
    words = re.findall(r"[a-z]+", text.lower())
    shape = next((w for w in words if w in ALL_SHAPES), None)
    colours = [w for w in words if w in PATTERN_COLOURS]
    pattern = next((_PATTERN_WORDS[w] for w in words if w in _PATTERN_WORDS), None)
    view = None
    for before, after in zip(words, words[1:]):
        if after == "view" and before in VIEWS:
            view = before
    if shape in ORIENTED:
        return Attributes(shape=shape, view=view)
    if pattern is None and shape is not None:
        pattern = "plain"
    colour = colours[0] if colours else None
    colour2 = colours[1] if pattern in ("striped", "checkered") and len(colours) > 1 else None
    return Attributes(shape=shape, colour=colour, colour2=colour2, pattern=pattern, view=view)


def object_of_prompt(prompt: str) -> ToyObject:
    """The toy object a prompt names; ToyPromptError (a UserError) naming the prompt when there is none."""
    try:
        return parse_prompt(prompt).object()
    except ToyPromptError as e:
        raise ToyPromptError(f"prompt {prompt!r}: {e}") from None


def ground_truth(prompt: str) -> dict[str, Tensor]:
    """The ground-truth Gaussians of a toy prompt, as raw parameters in the engine's ParameterDict layout
    (means, scales (log), quats (wxyz), opacities (logit), sh0 [N,1,3], shN [N,0,3]); see `objects.build`."""
    return build(object_of_prompt(prompt))


def is_oriented(prompt: str) -> bool:
    """True when the prompt's object has a front (house, penguin). Every other object's pose about the z axis is
    free (its captions say nothing about it), so benchmarks compare it with the truth over azimuth offsets."""
    return parse_prompt(prompt).oriented


__all__ = [
    "Attributes", "ToyPromptError", "VIEWS", "caption", "caption_table", "ground_truth", "is_oriented",
    "object_of_prompt", "parse_prompt", "sample_caption_ids", "view_of_azimuth", "views_of_azimuths", "with_view",
]


def caption_words() -> list[str]:
    """Every word (and the comma) a toy caption uses, plus a few common prompt words."""
    words = ["a", "an", "and", ",", "front", "side", "back", "view", "photo", "of", "the"]
    words += list(ALL_SHAPES) + list(PATTERN_COLOURS) + [p for p in PATTERNS if p != "plain"]
    return words
