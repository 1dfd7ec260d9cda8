"""The sandbox's world: the shapes world the shipped tokenizer and base model are built for.

32 px pictures of 4 x 4 cells of 8 px: one VQ code per cell (the tiny Chameleon VQGAN downsamples by 8), 16 image
tokens per picture, so a forward-dynamics sequence is about 50 tokens and the whole loop trains in minutes on two
CPU cores. Objects, colours, shapes and actions are the default world's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from wm_hub.data.shapes_world import WorldConfig

SANDBOX_WORLD = WorldConfig(image_size=32, grid=4)
# The shipped base (a source checkout's sandbox/base): what the demo and the study fine-tune.
SANDBOX_BASE = Path(__file__).resolve().parents[2] / "sandbox" / "base"
# Videos: every action in one frame after 20 still frames, so the paper's key frames (top 6 flow frames at least 20
# apart) are exactly the actions' frames (wm_hub.sandbox.videos).
SANDBOX_VIDEO_WORLD = dataclasses.replace(SANDBOX_WORLD, slide=False, hold_frames=20, actions_per_video=6)
