#!/usr/bin/env python3
"""Converts a checkpoint of the official SeFAR trainer into weights sefar loads.

The official trainer (TimeSformer's timesformer/utils/checkpoint.py, save_checkpoint) writes
`torch.save({"epoch", "model_state", "optimizer_state", "cfg"})`, the model's state dict under
"model_state", its keys prefixed with "module." when the model was wrapped in
DistributedDataParallel. This writes the model's tensors (float32, names without "module.") to a
safetensors file whose metadata carries the model config ("sefar.model_config"), so that
`sefar infer --weights`, pipelines/eval.json (`--set weights=...`, its "auto" parameters) and the
sefar_model parameter "init_from" use it as they use a run's model.safetensors.

The config is read from the tensor shapes: patch size and width from the patch projection, depth
from the blocks, frames per view from the time embeddings, classes from fc. The input size is the
crop trained at, cfg DATA.TRAIN_CROP_SIZE (the official patch embedding keeps a 14x14 position grid
whatever the crop and resizes it to the input's grid, 'nearest', in every forward pass; this resizes
it once, the same way), else the position-embedding grid times the patch size. The number of attention heads is not in any shape: it comes from the
checkpoint's cfg (MODEL.MODEL_TYPE small: 6, base: 12), else from the width (384: 6, 768: 12,
64: 4), else --heads.

Run it with the project's Python environment (PyTorch and safetensors:
`bash scripts/setup_python.sh test torch`):

    .venv/bin/python tools/convert_official.py checkpoint_epoch_00030.pyth sefar_s.safetensors

Exit status: 0 converted, 2 the input is not such a checkpoint or an option contradicts it (nothing
written), 1 anything else. docs/PRETRAINED.md has the details.
"""

import argparse
import json
import math
import os
import re
import sys
import tempfile

PREFIX = "vit.model."
HEAD_MODULES = ["post_fusion1", "post_fusion0", "global_fusion", "ln1", "ln2", "ln3", "fc"]
BLOCK_MODULES = ["norm1", "attn.qkv", "attn.proj", "temporal_norm1", "temporal_attn.qkv",
                 "temporal_attn.proj", "temporal_fc", "norm2", "mlp.fc1", "mlp.fc2"]
HEADS_BY_TYPE = {"small": 6, "base": 12}
HEADS_BY_WIDTH = {384: 6, 768: 12, 64: 4}
# Training-time settings of the official model (vit_small/base_patch16_224_mix, multi_granular_vit);
# they do not change inference and are what a run started with init_from uses unless told otherwise.
OFFICIAL_RATES = {"drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.1, "head_dropout": 0.5}


class NotConvertible(Exception):
    """The input is not an official SeFAR checkpoint, or an option contradicts it."""


def fail(path, why):
    raise NotConvertible(f"{path}: {why}")


def load_checkpoint(torch, path, trust_pickle):
    if not os.path.isfile(path):
        fail(path, "no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle stream.
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        fail(path, "not a PyTorch checkpoint (torch.save writes a zip archive or a pickle; this is neither)")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... by format
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        unsupported = [line for line in lines if "Unsupported global" in line]
        if not trust_pickle and unsupported:
            fail(path, "it holds Python objects other than tensors, numbers and strings; if you trust "
                       f"the file, convert it with --trust-pickle ({unsupported[0]})")
        fail(path, f"not a readable PyTorch checkpoint (torch.load: {lines[0]})")


def model_state(torch, path, checkpoint):
    """The state dict inside the checkpoint, with "module." stripped."""
    if not isinstance(checkpoint, dict):
        fail(path, f"a checkpoint is a dict with 'model_state'; this file holds a {type(checkpoint).__name__}")
    if "model_state" in checkpoint:
        state = checkpoint["model_state"]
    elif checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        state = checkpoint  # a bare state dict (model.state_dict() saved as it is)
    else:
        keys = ", ".join(sorted(map(str, checkpoint.keys()))[:10])
        fail(path, f"no 'model_state' in the checkpoint (its keys: {keys})")
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        fail(path, "'model_state' is not a state dict (a mapping of names to tensors)")
    out = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name in out:
            fail(path, f"key '{name}' appears both with and without the 'module.' prefix")
        out[name] = value
    return out


def official_cfg(checkpoint):
    """The checkpoint's cfg (yacs' YAML dump) as a dict; {} when absent or unreadable."""
    text = checkpoint.get("cfg") if isinstance(checkpoint, dict) else None
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        return {}
    try:
        import yaml
        cfg = yaml.safe_load(text)
        return cfg if isinstance(cfg, dict) else {}
    except Exception:
        return {}


def cfg_get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def expected_keys(config):
    keys = [PREFIX + k for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias")]
    keys += [f"{PREFIX}time_embed.{i}" for i in range(len(config["views"]))]
    for b in range(config["depth"]):
        for m in BLOCK_MODULES:
            keys.append(f"{PREFIX}blocks.{b}.{m}.weight")
            if config["qkv_bias"] or not m.endswith(".qkv"):
                keys.append(f"{PREFIX}blocks.{b}.{m}.bias")
    keys += [PREFIX + "norm.weight", PREFIX + "norm.bias"]
    keys += [f"{m}.{p}" for m in HEAD_MODULES for p in ("weight", "bias")]
    return keys


def infer_config(path, state, cfg, args):
    required = [PREFIX + "patch_embed.proj.weight", PREFIX + "pos_embed", PREFIX + "time_embed.0",
                PREFIX + "norm.weight", "post_fusion0.weight", "fc.weight"]
    absent = [k for k in required if k not in state]
    if absent:
        sample = ", ".join(sorted(state)[:8])
        hint = ""
        if any(k.startswith("model.blocks.") for k in state) and "model.head.weight" in state:
            hint = " (it looks like a single-view TimeSformer, not SeFAR's multi_granular_vit)"
        elif any(k.startswith("blocks.") for k in state):
            hint = " (it looks like ImageNet ViT weights: give them to the sefar_model parameter \"pretrained\")"
        fail(path, f"not a SeFAR multi_granular_vit state: no {', '.join(absent)}{hint}; its keys begin "
                   f"{sample}")
    proj = state[PREFIX + "patch_embed.proj.weight"]
    if proj.dim() != 4 or proj.shape[2] != proj.shape[3]:
        fail(path, f"patch_embed.proj.weight has shape {list(proj.shape)}, not [dim, channels, patch, patch]")
    dim, in_chans, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[2])
    pos = state[PREFIX + "pos_embed"]
    grid = math.isqrt(int(pos.shape[1]) - 1) if pos.dim() == 3 and pos.shape[1] > 1 else 0
    if pos.dim() != 3 or grid * grid != pos.shape[1] - 1 or pos.shape[2] != dim:
        fail(path, f"pos_embed has shape {list(pos.shape)}, not [1, 1 + grid*grid, {dim}]")
    depth = 1 + max((int(m.group(1)) for k in state for m in [re.match(re.escape(PREFIX) + r"blocks\.(\d+)\.", k)] if m),
                    default=-1)
    if depth == 0:
        fail(path, "no transformer blocks (vit.model.blocks.N.*)")
    views = []
    while f"{PREFIX}time_embed.{len(views)}" in state:
        views.append(int(state[f"{PREFIX}time_embed.{len(views)}"].shape[1]))
    hidden = state.get(f"{PREFIX}blocks.0.mlp.fc1.weight")
    if hidden is None:
        fail(path, "no vit.model.blocks.0.mlp.fc1.weight")

    model_type = cfg_get(cfg, "MODEL.MODEL_TYPE")
    if args.heads:
        heads, heads_from = args.heads, "--heads"
    elif model_type in HEADS_BY_TYPE:
        heads, heads_from = HEADS_BY_TYPE[model_type], f"cfg MODEL.MODEL_TYPE {model_type}"
    elif dim in HEADS_BY_WIDTH:
        heads, heads_from = HEADS_BY_WIDTH[dim], f"width {dim}"
    else:
        fail(path, f"the number of attention heads is in no tensor shape and the checkpoint has no cfg "
                   f"naming the model type (width {dim}): give --heads")
    if dim % heads:
        fail(path, f"width {dim} is not a multiple of {heads} heads ({heads_from})")

    config = {
        "size": "custom",
        "img_size": grid * patch,
        "patch_size": patch,
        "in_chans": in_chans,
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": int(hidden.shape[0]) / dim,
        "qkv_bias": f"{PREFIX}blocks.0.attn.qkv.bias" in state,
        "views": views,
        "num_classes": int(state["fc.weight"].shape[0]),
        "fusion_dim": int(state["post_fusion0.weight"].shape[0]),
        **OFFICIAL_RATES,
        "attention": "auto",
        "init": "official",
    }
    if (patch, dim, depth, heads, config["mlp_ratio"]) == (16, 384, 12, 6, 4.0):
        config["size"] = "S"
    elif (patch, dim, depth, heads, config["mlp_ratio"]) == (16, 768, 12, 12, 4.0):
        config["size"] = "B"

    # Overrides: they may say what the shapes cannot, never contradict them.
    if args.num_classes is not None and args.num_classes != config["num_classes"]:
        fail(path, f"--num-classes {args.num_classes}, but fc has {config['num_classes']} outputs")
    if args.views is not None:
        if len(args.views) != len(views):
            fail(path, f"--views lists {len(args.views)} views, but the checkpoint has {len(views)} time embeddings")
        config["views"] = args.views
    # The official PatchEmbed lays out a 14x14 grid whatever the crop and its forward resizes the
    # position embeddings to the input's grid ('nearest'): the crop trained at is cfg's.
    img_size, img_from = args.img_size, "--img-size"
    if img_size is None and isinstance(cfg_get(cfg, "DATA.TRAIN_CROP_SIZE"), int):
        img_size, img_from = cfg_get(cfg, "DATA.TRAIN_CROP_SIZE"), "cfg DATA.TRAIN_CROP_SIZE"
    if img_size is not None:
        if img_size <= 0 or img_size % patch:
            fail(path, f"{img_from} {img_size} is not a positive multiple of the patch size {patch}")
        config["img_size"] = img_size
    return config


def resize_pos_embed(torch, tensor, grid):
    """[1, 1 + g*g, D] -> [1, 1 + grid*grid, D] as the official forward_features does for an input of
    another size: the CLS position as it is, the grid by nearest neighbour."""
    side = math.isqrt(tensor.shape[1] - 1)
    if side == grid:
        return tensor
    other = tensor[0, 1:, :].unsqueeze(0).transpose(1, 2).reshape(1, tensor.shape[2], side, side)
    other = torch.nn.functional.interpolate(other, size=(grid, grid), mode="nearest")
    return torch.cat((tensor[:, :1, :], other.flatten(2).transpose(1, 2)), 1)


def resize_time_embed(torch, tensor, frames):
    """[1, T, D] -> [1, frames, D] by nearest neighbour: what the official forward does for a view
    with another frame count."""
    if tensor.shape[1] == frames:
        return tensor
    return torch.nn.functional.interpolate(tensor.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)


def convert(args):
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        print(f"convert_official: needs PyTorch and safetensors in the project's environment ({e}); "
              "install them with: bash scripts/setup_python.sh test torch", file=sys.stderr)
        return 1
    checkpoint = load_checkpoint(torch, args.checkpoint, args.trust_pickle)
    state = model_state(torch, args.checkpoint, checkpoint)
    cfg = official_cfg(checkpoint)
    config = infer_config(args.checkpoint, state, cfg, args)

    expected = expected_keys(config)
    missing = [k for k in expected if k not in state]
    unexpected = sorted(k for k in state if k not in set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {', '.join(missing[:20])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:20])}")
        fail(args.checkpoint, "not the multi_granular_vit these shapes describe: " + "; ".join(parts))

    tensors = {}
    for key in expected:
        value = state[key]
        if not value.is_floating_point():
            fail(args.checkpoint, f"{key} is {value.dtype}, not a floating-point tensor")
        value = value.detach().to(torch.float32)
        if key == PREFIX + "pos_embed":
            value = resize_pos_embed(torch, value, config["img_size"] // config["patch_size"])
        if key.startswith(PREFIX + "time_embed."):
            value = resize_time_embed(torch, value, config["views"][int(key.rsplit(".", 1)[1])])
        tensors[key] = value.contiguous()

    metadata = {"format": "pt", "sefar.model_config": json.dumps(config),
                "sefar.converted_from": os.path.basename(args.checkpoint)}
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("epoch"), int):
        metadata["sefar.official_epoch"] = str(checkpoint["epoch"])
    short_side = args.short_side
    if short_side is None:
        scales = cfg_get(cfg, "DATA.TRAIN_JITTER_SCALES")
        if isinstance(scales, list) and scales and isinstance(scales[0], int):
            short_side = scales[0]  # the official test resizes the short side to the smallest scale
    if short_side is not None:
        metadata["sefar.eval_short_side"] = str(short_side)

    out_dir = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".tmp", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, args.output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    params = sum(t.numel() for t in tensors.values())
    epoch = f", epoch {checkpoint['epoch']}" if "sefar.official_epoch" in metadata else ""
    print(f"{args.checkpoint}{epoch} -> {args.output}: {len(tensors)} tensors, {params / 1e6:.2f}M parameters")
    print(f"model config: {json.dumps(config)}")
    return 0


def int_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of frame counts")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}': every view needs a positive frame count")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Converts an official SeFAR/TimeSformer training checkpoint (torch.save of a dict with "
                    "model_state) into safetensors with the sefar model config.")
    parser.add_argument("checkpoint", help="the official checkpoint (e.g. checkpoint_epoch_00030.pyth)")
    parser.add_argument("output", help="the safetensors file to write")
    parser.add_argument("--heads", type=int, help="attention heads (default: from cfg or the width)")
    parser.add_argument("--img-size", type=int, help="input size trained at (default: cfg DATA.TRAIN_CROP_SIZE, "
                                                     "else position-embedding grid x patch); pos_embed is resized "
                                                     "to it as the official forward does")
    parser.add_argument("--views", type=int_list, help="frames per view, e.g. 2,2,4 (default: the time "
                                                       "embeddings'; others are resized by nearest neighbour)")
    parser.add_argument("--num-classes", type=int, help="checked against fc's outputs")
    parser.add_argument("--short-side", type=int, help="short side for evaluation (metadata "
                                                       "sefar.eval_short_side; default: cfg DATA.TRAIN_JITTER_SCALES[0])")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="unpickle arbitrary Python objects (only for files you trust)")
    args = parser.parse_args(argv)
    try:
        return convert(args)
    except NotConvertible as e:
        print(f"convert_official: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
