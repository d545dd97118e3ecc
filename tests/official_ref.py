"""Reference outputs of the official SeFAR model for test_pretrained (run with .venv's python).

    official_ref.py OUT_DIR

Builds the official multi_granular_vit (SeFAR-S: vit_small_patch16_224_mix) on the CPU with random
weights, writes OUT_DIR/checkpoint.pyth the way the official trainer's save_checkpoint does (a dict
of epoch, model_state, optimizer_state and cfg; the state dict's keys prefixed "module." as when the
model was wrapped in DistributedDataParallel), fixed input views OUT_DIR/inputs.safetensors
(views.0, views.1, ...) and the model's logits on them in eval mode, OUT_DIR/expected.safetensors.

The official code is not part of this repository. SEFAR_OFFICIAL_SRC names it: a checkout of
https://github.com/KyleHuang9/SeFAR (a folder holding timesformer/models/vit.py) or a git directory
of it (its HEAD is read with git archive). Only the model files are copied, to a temporary folder:
the package's __init__ files (which import the datasets, fvcore's config system, ...) are not run,
and two imports the model files make but do not need here are stubbed in sys.modules: fvcore's
Registry (build.py's MODEL_REGISTRY decorator) and torch._six (gone from PyTorch 2; vit_utils reads
container_abcs from it). Its weight loader, which would download ImageNet weights, is replaced by a
no-op. einops, which the forward pass uses, comes from scripts/requirements/reference.txt.

Exit status 3 with a line starting "skip:" when PyTorch, einops or the official code is missing.
"""

import collections.abc
import os
import shutil
import subprocess
import sys
import tempfile
import types

MODEL_FILES = ["vit.py", "bottle.py", "vit_utils.py", "helpers.py", "features.py", "conv2d_same.py",
               "linear.py", "build.py"]


def skip(why):
    print(f"skip: {why}")
    sys.exit(3)


def copy_official(dest):
    src = os.environ.get("SEFAR_OFFICIAL_SRC", "")
    if not src:
        skip("SEFAR_OFFICIAL_SRC is not set (a checkout or git directory of the official SeFAR code; "
             "see docs/PRETRAINED.md)")
    models = os.path.join(dest, "timesformer", "models")
    os.makedirs(models)
    if os.path.isfile(os.path.join(src, "timesformer", "models", "vit.py")):
        for name in MODEL_FILES:
            shutil.copy(os.path.join(src, "timesformer", "models", name), models)
        return
    try:
        paths = [f"timesformer/models/{name}" for name in MODEL_FILES]
        archive = subprocess.run(["git", f"--git-dir={src}", "archive", "HEAD"] + paths,
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        skip(f"SEFAR_OFFICIAL_SRC={src} is neither a checkout of the official code nor a git directory "
             f"holding timesformer/models/vit.py ({e})")


def import_official(root):
    """timesformer.models.vit from `root` without running the package __init__ files."""
    sys.dont_write_bytecode = True
    for name, path in (("timesformer", os.path.join(root, "timesformer")),
                       ("timesformer.models", os.path.join(root, "timesformer", "models"))):
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package

    class Registry:  # fvcore.common.registry.Registry, as far as build.py and vit.py use it
        def __init__(self, name):
            self.name, self.classes = name, {}

        def register(self, obj=None):
            def add(o):
                self.classes[o.__name__] = o
                return o
            return add(obj) if obj is not None else add

    for name in ("fvcore", "fvcore.common"):
        sys.modules.setdefault(name, types.ModuleType(name))
    registry = types.ModuleType("fvcore.common.registry")
    registry.Registry = Registry
    sys.modules["fvcore.common.registry"] = registry
    try:
        import torch._six  # noqa: F401  (PyTorch 1.x)
    except ImportError:
        six = types.ModuleType("torch._six")
        six.container_abcs = collections.abc
        sys.modules["torch._six"] = six
    import timesformer.models.vit as vit
    vit.load_pretrained = lambda *args, **kwargs: None  # never download ImageNet weights
    return vit


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    try:
        import torch
        from safetensors.torch import save_file
        import einops  # noqa: F401
    except ImportError as e:
        skip(f"{e.name} is not installed in .venv (bash scripts/setup_python.sh test reference)")

    with tempfile.TemporaryDirectory(prefix="sefar-official-") as root:
        copy_official(root)
        vit = import_official(root)

        # The official cfg, as far as the model reads it (a yacs CfgNode there).
        crop, views, classes = 112, [2, 2, 4], 7
        node = types.SimpleNamespace
        cfg = node(MODEL=node(MODEL_TYPE="small", NUM_CLASSES=classes),
                   DATA=node(TRAIN_CROP_SIZE=crop, SAMPLE_FRAMES=views, NUM_FRAMES=max(views)),
                   TIMESFORMER=node(ATTENTION_TYPE="divided_space_time", PRETRAIN_PATH=""))
        torch.manual_seed(0)
        model = vit.multi_granular_vit(cfg)
        # The official initialisation leaves time_embed and most temporal_fc at zero and every bias
        # and LayerNorm at its identity; move every parameter off it so that each one matters.
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-3)
        model.train()
        x = [torch.randn(2, 3, t, crop, crop) for t in views]
        model(x).logsumexp(1).mean().backward()  # a step, so optimizer_state has momentum buffers
        optimizer.zero_grad()

        cfg_yaml = (f"DATA:\n  SAMPLE_FRAMES: {views}\n  TRAIN_CROP_SIZE: {crop}\n  TRAIN_JITTER_SCALES: [128, 160]\n"
                    f"MODEL:\n  MODEL_NAME: multi_granular_vit\n  MODEL_TYPE: small\n  NUM_CLASSES: {classes}\n"
                    "NUM_GPUS: 2\n")
        checkpoint = {
            "epoch": 29,
            "model_state": {"module." + k: v for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "cfg": cfg_yaml,
        }
        torch.save(checkpoint, os.path.join(out, "checkpoint.pyth"))

        model.eval()
        torch.manual_seed(1)
        inputs = [torch.randn(3, 3, t, crop, crop) for t in views]
        with torch.no_grad():
            logits = model(inputs)
        save_file({f"views.{i}": v.contiguous() for i, v in enumerate(inputs)},
                  os.path.join(out, "inputs.safetensors"))
        save_file({"logits": logits.contiguous()}, os.path.join(out, "expected.safetensors"))
        print(f"official multi_granular_vit (small, {crop} px, views {views}, {classes} classes): "
              f"{sum(p.numel() for p in model.parameters())} parameters, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
