"""The toy world: procedural objects with known 3D ground truth, the small SD-format prior trained on their
renders (shipped in ``samples/toy-prior``) and the evaluator that reads renders back (``samples/toy-evaluator``).

Modules (nothing heavy is imported here):
- `objects`: the objects as ground-truth Gaussian sets (`ToyObject`, `build`, `world_objects`);
- `captions`: captions by azimuth, `parse_prompt`, `ground_truth(prompt)`;
- `data`: cameras, recipe backgrounds, ground-truth renders, the training pool;
- `tokenizer`: the CLIP-format BPE tokenizer of the caption vocabulary;
- `models`: the prior's parts (AutoencoderKL, CLIPTextModel, UNet2DConditionModel, DDIM) and its folder;
- `train`: ``python -m lucidkit.toyworld.train --out DIR --seed 0 [--minutes N]``;
- `evaluator`: `ToyEvaluator` (prompt accuracy, view consistency, multi-face rate);
- `quality`: ``python -m lucidkit.toyworld.quality``, the prior's sample accuracy table.
"""
