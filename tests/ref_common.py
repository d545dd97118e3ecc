"""What the reference scripts of tests/ (official_ref.py, official_step_ref.py, timm_ref.py; run with
.venv's python) share: their command line, the "skip:" exit (status 3) when .venv or the official
code is missing, moving a model's parameters off their initialisation, writing a state dict, and
the official SeFAR model code.

The official code is not part of this repository. SEFAR_OFFICIAL_SRC names it: a checkout of
https://github.com/KyleHuang9/SeFAR (a folder holding timesformer/models/vit.py) or a git directory
of it (its HEAD is read with git archive). Only the model files are copied, to a temporary folder:
the package's __init__ files (which import the datasets, fvcore's config system, ...) are not run,
and two imports the model files make but do not need here are stubbed in sys.modules: fvcore's
Registry (build.py's MODEL_REGISTRY decorator) and torch._six (gone from PyTorch 2; vit_utils reads
container_abcs from it). Its weight loader, which would download ImageNet weights, is replaced by a
no-op.
"""

import collections.abc
import importlib
import os
import shutil
import subprocess
import sys
import types

MODEL_FILES = ["vit.py", "bottle.py", "vit_utils.py", "helpers.py", "features.py", "conv2d_same.py",
               "linear.py", "build.py"]


def skip(why):
    print(f"skip: {why}")
    sys.exit(3)


def start(usage, *modules):
    """The script's OUT_DIR, its one argument (without it: `usage`, the script's docstring, and exit
    status 2), once each of `modules` imports (a skip naming what .venv lacks otherwise)."""
    if len(sys.argv) != 2:
        print(usage, file=sys.stderr)
        sys.exit(2)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            skip(f"{e.name} is not installed in .venv (bash scripts/setup_python.sh test reference)")
    return sys.argv[1]


def perturb(model, scale):
    """Moves every parameter of `model` off its initial value by `scale` times normal noise (biases
    and LayerNorms start at their identity, and so would not matter)."""
    import torch
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)


def save_state(module, path):
    """`module`'s state dict as a safetensors file, under its own names."""
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, path)


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


def official_model(vit, crop, views, classes):
    """The official multi_granular_vit, SeFAR-S (vit_small_patch16_224_mix), for `crop` px, `views`
    and `classes`, its random initialisation drawn after torch.manual_seed(0)."""
    import torch
    node = types.SimpleNamespace  # the official cfg, as far as the model reads it (a yacs CfgNode there)
    cfg = node(MODEL=node(MODEL_TYPE="small", NUM_CLASSES=classes),
               DATA=node(TRAIN_CROP_SIZE=crop, SAMPLE_FRAMES=views, NUM_FRAMES=max(views)),
               TIMESFORMER=node(ATTENTION_TYPE="divided_space_time", PRETRAIN_PATH=""))
    torch.manual_seed(0)
    return vit.multi_granular_vit(cfg)
