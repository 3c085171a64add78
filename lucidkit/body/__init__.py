"""Posed human bodies (for avatars): the built-in SMPL-X-format body, pose files, the OpenPose skeleton condition, and
initial Gaussians on the posed body surface.

Modules:
- `procedural`: our own procedural human body in the SMPL-X file layout (what `tools/avatar/make_body.py` writes
  to `samples/body/smplx/SMPLX_NEUTRAL.npz`);
- `pose`: SMPL-X parameter files, AMASS-style sequences and named built-in poses -> a posed body (vertices,
  faces, joints) in a normalised y-up frame, and the conversion to lucidkit's z-up world;
- `skeleton`: SMPL-X joints -> the 18 OpenPose body keypoints, projection with lucidkit cameras, visibility
  (behind the camera, hidden by the body) and drawing in the OpenPose convention;
- `init`: initial Gaussians sampled on the posed body surface.

Nothing here imports smplx, cv2 or diffusers at import time: `smplx` is imported when a body model is loaded.
"""
