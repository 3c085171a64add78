"""The toy world: procedural objects with known 3D ground truth, and the evaluator that reads renders back
(``samples/toy-evaluator``). The small SD-format prior trained on their renders ships in ``samples/toy-prior``; its
training and measurement scripts are in ``tools/toyworld/`` (``python -m tools.toyworld.train``, ``.quality``).

Modules (nothing heavy is imported here):
- `objects`: the objects as ground-truth Gaussian sets (`ToyObject`, `build`, `world_objects`);
- `captions`: captions by azimuth, `parse_prompt`, `ground_truth(prompt)`, the caption vocabulary;
- `data`: cameras, recipe backgrounds, ground-truth renders, the training pool;
- `evaluator`: `ToyEvaluator` (prompt accuracy, view consistency, multi-face rate);
- `people`: posed people from the built-in SMPL-X-format body ("a red person"), their renders and OpenPose
  conditions, the data of the toy pose ControlNet (``python -m tools.toyworld.train_controlnet``).
"""
