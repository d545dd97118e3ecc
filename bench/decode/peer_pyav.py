#!/usr/bin/env python3
"""The Python peer of the decode benchmark: SeFAR's unlabeled-clip input side written with PyAV and a
PyTorch DataLoader (Debian's python3-av 10 and python3-torch 1.13; run with /usr/bin/python3).

Per clip it does what the sefar `decode` + `views` nodes do with draws=weak_strong (DESIGN §2):
dual-level temporal elements for the view set [2,2,4] (S = 8 segments, one random frame per segment,
the official segment-to-view assignment), two independent draws (weak, strong), moderate temporal
perturbation of the strong draw (every fine view reversed), short side resized to a random size in
[256, 320], a random 224 crop and a random horizontal flip per draw, normalisation with mean 0.45 and
std 0.225, float tensors [3, T_i, 224, 224] per view, and channel dropout (p 0.2) on the strong draw.

Two decoding strategies (--mode):
  official    what the official SeFAR loader does: every draw decodes the clip on its own, with a
              seek per sampled frame (container.seek to the keyframe at or before it, decode forward
              to it), then the SlowFast/TimeSformer transform on float tensors (normalise, bilinear
              short-side jitter with torch.nn.functional.interpolate, crop, flip).
  sequential  a fair best-effort Python loader: one sequential pass per clip from the first frame up
              to the last frame either draw needs, the needed frames resized and converted by
              swscale (frame.reformat, bilinear) at one short side per clip, then crop, flip and
              normalise of only the cropped pixels.

Decoder threads 1 (as `ffmpeg -threads 1` and the sefar decode node), torch threads 1 in every process,
DataLoader(num_workers=N, batch_size=None): clips come out one by one as sefar's do (no collation).

Writes a JSON summary (--json): clips, wall seconds from creating the DataLoader iterator to the last
clip, clips/s, CPU seconds of the main process and of the (reaped) workers, and frames decoded.
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

MEAN, STD = 0.45, 0.225


# ---------------------------------------------------------------------------------------------------
# Sampling (DESIGN §2; the same rules as io/temporal.h).

def make_layout(view_set):
    """Segments per view: views served from the last (coarse) to the first; a view of k segments walks
    the segments in order and takes j when free and j >= c*S/k (c = segments it holds so far)."""
    S = sum(view_set)
    taken = [False] * S
    segments = [None] * len(view_set)
    for v in reversed(range(len(view_set))):
        k = view_set[v]
        mine = []
        for j in range(S):
            if len(mine) == k:
                break
            if not taken[j] and j * k >= len(mine) * S:
                mine.append(j)
                taken[j] = True
        for j in range(S):  # walk ended short: lowest free segments
            if len(mine) == k:
                break
            if not taken[j]:
                mine.append(j)
                taken[j] = True
        segments[v] = sorted(mine)
    return S, segments


def segment_range(n, S, j):
    b, e = j * n // S, (j + 1) * n // S
    return (b, e) if e > b else (b, b + 1)


def sample_train(layout, n, rng):
    """Per view, its frame indices in slot order: one uniformly random frame per segment."""
    S, segments = layout
    timeline = []
    for j in range(S):
        b, e = segment_range(n, S, j)
        timeline.append(rng.randrange(b, e))
    return [[timeline[j] for j in segs] for segs in segments]


def moderate(draw):
    """Moderate temporal perturbation: every fine view reversed, the coarse (last) view intact."""
    return [list(reversed(v)) for v in draw[:-1]] + [list(draw[-1])]


# ---------------------------------------------------------------------------------------------------
# Decoding.

def open_video(path):
    container = av.open(path)
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.codec_context.thread_count = 1
    return container, stream


def frame_index_fn(stream):
    tb = float(stream.time_base)
    fps = float(stream.average_rate)
    start = stream.start_time or 0
    return lambda pts: int(round((pts - start) * tb * fps)), (lambda idx: start + int(round(idx / fps / tb))), start


def frame_count(container, stream):
    n = stream.frames  # the container's count (mp4: the sample table), as cv2's CAP_PROP_FRAME_COUNT
    if n <= 0:
        n = sum(1 for p in container.demux(stream) if p.size > 0)
        container.seek(0, stream=stream)
    return n


def decode_seek_per_frame(path, layout, rng, perturb):
    """One draw the official loader's way: open the clip, read its frame count, sample the draw, and for
    every sampled frame seek to the keyframe at or before it and decode forward to it. Returns the draw,
    its frames as RGB24 arrays at the source size in timeline (view, slot) order, and frames decoded."""
    container, stream = open_video(path)
    to_index, to_pts, _ = frame_index_fn(stream)
    out, decoded = [], 0
    try:
        draw = sample_train(layout, frame_count(container, stream), rng)
        if perturb:
            draw = moderate(draw)
        for idx in (i for v in draw for i in v):
            container.seek(to_pts(idx), backward=True, any_frame=False, stream=stream)
            got = last = None
            for frame in container.decode(stream):
                decoded += 1
                last = frame
                if frame.pts is not None and to_index(frame.pts) >= idx:
                    got = frame
                    break
            got = got or last
            if got is None:
                raise RuntimeError(f"{path}: frame {idx} not decoded")
            out.append(got.to_ndarray(format="rgb24"))
    finally:
        container.close()
    return draw, out, decoded


def decode_sequential(path, layout, rng, short_side):
    """Both draws from one open and one forward pass from the start to the last frame either needs; the
    needed frames resized by swscale (one short side per clip). Returns the draws, {index: RGB24 array}
    and frames decoded."""
    container, stream = open_video(path)
    to_index, _, _ = frame_index_fn(stream)
    out, decoded = {}, 0
    try:
        n = frame_count(container, stream)
        draws = [sample_train(layout, n, rng), moderate(sample_train(layout, n, rng))]
        wanted = {i for draw in draws for v in draw for i in v}
        last_needed = max(wanted)
        cc = stream.codec_context
        nh, nw = short_side_size(cc.height, cc.width, rng.randint(short_side[0], short_side[1]))
        for frame in container.decode(stream):
            decoded += 1
            idx = to_index(frame.pts) if frame.pts is not None else decoded - 1
            if idx in wanted:
                out[idx] = frame.reformat(width=nw, height=nh, format="rgb24", interpolation="BILINEAR").to_ndarray()
            if idx >= last_needed:
                break
    finally:
        container.close()
    missing = wanted - out.keys()
    if missing:
        raise RuntimeError(f"{path}: frames {sorted(missing)} not decoded")
    return draws, out, decoded


# ---------------------------------------------------------------------------------------------------
# Spatial transforms.

def short_side_size(h, w, side):
    if h <= w:
        return side, int(w * side / h)
    return int(h * side / w), side


def official_transform(frames, view_set, rng, cfg):
    """SlowFast/TimeSformer: uint8 [T,H,W,C] -> float/255 -> normalise -> [C,T,H,W] -> bilinear short-side
    jitter (interpolate) -> random crop -> random flip. Split into views [3, k_i, crop, crop]."""
    x = torch.from_numpy(np.stack(frames)).float().div_(255.0)
    x = (x - MEAN) / STD
    x = x.permute(3, 0, 1, 2)  # C T H W
    h, w = x.shape[2], x.shape[3]
    nh, nw = short_side_size(h, w, rng.randint(cfg.short_side[0], cfg.short_side[1]))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False)
    y0, x0 = rng.randint(0, nh - cfg.crop), rng.randint(0, nw - cfg.crop)
    x = x[:, :, y0:y0 + cfg.crop, x0:x0 + cfg.crop]
    if rng.random() < 0.5:
        x = x.flip(3)
    return split_views(x.contiguous(), view_set)


def crop_transform(frames, view_set, rng, cfg):
    """Frames already resized (uint8 HWC): random crop, flip and the HWC -> CHW transpose on uint8 in
    numpy, then float and normalise in place. Split into views [3, k_i, crop, crop]."""
    nh, nw = frames[0].shape[0], frames[0].shape[1]
    y0, x0 = rng.randint(0, nh - cfg.crop), rng.randint(0, nw - cfg.crop)
    x = np.stack([f[y0:y0 + cfg.crop, x0:x0 + cfg.crop] for f in frames])  # T h w C
    if rng.random() < 0.5:
        x = x[:, :, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))  # C T h w
    x = x.float().div_(255.0).sub_(MEAN).div_(STD)
    return split_views(x, view_set)


def split_views(x, view_set):
    views, t = [], 0
    for k in view_set:
        views.append(x[:, t:t + k])
        t += k
    return views


def channel_dropout(views, rng, p=0.2):
    scale = torch.tensor([0.0 if rng.random() < p else 1.0 / (1.0 - p) for _ in range(3)]).view(3, 1, 1, 1)
    return [v * scale for v in views]


# ---------------------------------------------------------------------------------------------------
# The dataset.

class UnlabeledClips(Dataset):
    def __init__(self, list_path, cfg):
        root = os.path.dirname(os.path.abspath(list_path))
        self.paths = []
        with open(list_path) as f:
            for line in f:
                parts = line.split()
                if parts and not parts[0].startswith("#"):
                    self.paths.append(os.path.join(root, parts[0]))
        self.cfg = cfg
        self.layout = make_layout(cfg.views)

    def __len__(self):
        return len(self.paths) * self.cfg.epochs

    def __getitem__(self, item):
        cfg = self.cfg
        epoch, index = divmod(item, len(self.paths))
        path = self.paths[index]
        rng = random.Random((cfg.seed * 1_000_003 + epoch) * 1_000_003 + index)
        views, decoded = [], 0
        if cfg.mode == "official":
            for strong in (False, True):  # weak, then strong: two independent loads of the clip
                _, frames, dec = decode_seek_per_frame(path, self.layout, rng, perturb=strong)
                decoded += dec
                views.append(official_transform(frames, cfg.views, rng, cfg))
        else:
            draws, frames, decoded = decode_sequential(path, self.layout, rng, cfg.short_side)
            for draw in draws:
                views.append(crop_transform([frames[i] for v in draw for i in v], cfg.views, rng, cfg))
        views[1] = channel_dropout(views[1], rng)
        return {"weak": views[0], "strong": views[1], "decoded": decoded}


def worker_init(_):
    torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("list", help="split list, paths relative to its folder")
    ap.add_argument("--mode", choices=["official", "sequential"], default="official")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--views", default="2,2,4")
    ap.add_argument("--short-side", type=int, nargs=2, default=[256, 320])
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the summary here")
    cfg = ap.parse_args()
    cfg.views = [int(v) for v in cfg.views.split(",")]
    torch.set_num_threads(1)
    av.logging.set_level(av.logging.ERROR)

    ds = UnlabeledClips(cfg.list, cfg)
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=cfg.workers,
                        worker_init_fn=worker_init, generator=torch.Generator().manual_seed(cfg.seed))
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    clips = decoded = 0
    elements = 0
    it = iter(loader)
    for sample in it:
        clips += 1
        decoded += int(sample["decoded"])
        elements += sum(v.numel() for key in ("weak", "strong") for v in sample[key])
    wall = time.perf_counter() - t0
    del it  # reap the workers so their CPU time is counted
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_main = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    cpu_workers = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)
    expected = len(ds) * 2 * sum(cfg.views) * 3 * cfg.crop * cfg.crop
    summary = {
        "mode": cfg.mode, "list": cfg.list, "workers": cfg.workers, "epochs": cfg.epochs, "clips": clips,
        "wall_seconds": wall, "clips_per_second": clips / wall, "cpu_main": cpu_main, "cpu_workers": cpu_workers,
        "frames_decoded": decoded, "frames_decoded_per_clip": decoded / max(clips, 1),
        "view_elements_ok": elements == expected,
        "versions": {"python": sys.version.split()[0], "av": av.__version__, "torch": torch.__version__,
                     "numpy": np.__version__},
    }
    text = json.dumps(summary, indent=1)
    if cfg.json:
        with open(cfg.json, "w") as f:
            f.write(text + "\n")
    print(f"peer {cfg.mode}: {clips} clips in {wall:.2f} s = {clips / wall:.2f} clips/s "
          f"({decoded / max(clips, 1):.0f} frames decoded per clip; CPU main {cpu_main:.2f} s, "
          f"workers {cpu_workers:.2f} s)")


if __name__ == "__main__":
    main()
