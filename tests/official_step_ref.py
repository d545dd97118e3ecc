"""One semi-supervised step of the official SeFAR training loop, for test_step_parity (run with .venv's python).

    official_step_ref.py OUT_DIR

Runs the official `ssl_train_epoch` (tools/train_net_emamix.py) for one iteration on the CPU, fp32:
SeFAR-S (the official model code, vit_small_patch16_224_mix) at 112 px, views [2, 2, 4], 7 classes,
2 labeled and 3 unlabeled clips, epoch 20 of 30 with 5 warm-up epochs. Every random draw of the step
is made here, once, and injected, so that test_step_parity can give sefar the same ones:

- the teacher's Monte-Carlo dropout: the EMA teacher's head dropout (p 0.5, its only active random
  layer) is replaced by a module that applies K = 10 given masks, one per pass;
- the channel dropout: `F.dropout2d(strong_t, 0.2)`, one call per view, applies given masks
  [V, U, 3] (kept channels scaled by 1/0.8, as dropout2d does);
- Tube TokenMix: `torch.randperm` (one call per view) returns given permutations [V, U],
  `np.random.beta` the given lambda, and TubeMasking's `np.random.shuffle` lays out the given mask of
  each view (floor(lambda P) of the P = 49 patch positions set);
- the student's own random layers (stochastic depth, head dropout 0.5) are switched off: the loop
  draws them inside three forward passes and test_step_parity runs sefar's student without them too.

Only the loop's own definitions (TubeMasking, enable_dropout, get_mask, ssl_train_epoch) are taken
from the training script (by `ast`, from the official code copied to a temporary folder by
ref_common.py) and run with stand-ins for what the script imports but the step does not need
here: the loss registry (cross_entropy), the learning-rate helpers, the NaN check, the meters, the
optimiser (it records the gradients instead of updating) and `.cuda()` (the identity on the CPU).
The loop's locals at its return give the teacher's statistics, eta and the losses.

Writes OUT_DIR/student.safetensors and OUT_DIR/teacher.safetensors (official state-dict names),
OUT_DIR/inputs.safetensors (batches and draws) and OUT_DIR/official.safetensors (the step's
results: mean_prob, std_prob, eta, loss_sup, loss_un, loss_mix, loss, grad.<parameter>).
vit.model.pos_embed is [1, 197, D] officially (a 14x14 grid resized with 'nearest' at every forward
pass); its gradient is written on the 7x7 grid the resize reads (sefar loads the embedding resized),
after checking that the positions the resize skips got none.

Exit status 3 with a line starting "skip:" when PyTorch, einops, safetensors or the official code
is missing.
"""

import ast
import copy
import math
import os
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # importing ref_common leaves no __pycache__ in tests/
import ref_common  # noqa: E402

TRAIN_SCRIPT = "tools/train_net_emamix.py"
LOOP_NAMES = ("TubeMasking", "enable_dropout", "get_mask", "ssl_train_epoch")

CROP, VIEWS, CLASSES = 112, [2, 2, 4], 7
LABELED, UNLABELED, PASSES = 2, 3, 10
EPOCH, WARMUP, EPOCHS = 20, 5, 30
PATCHES = (CROP // 16) ** 2


def training_script():
    src = os.environ.get("SEFAR_OFFICIAL_SRC", "")
    path = os.path.join(src, TRAIN_SCRIPT)
    if os.path.isfile(path):
        with open(path) as f:
            return f.read(), path
    try:
        text = subprocess.run(["git", f"--git-dir={src}", "show", f"HEAD:{TRAIN_SCRIPT}"], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        ref_common.skip(f"SEFAR_OFFICIAL_SRC={src}: no {TRAIN_SCRIPT} ({e})")
    return text, f"{src}:HEAD:{TRAIN_SCRIPT}"


def loop_definitions(text, filename, namespace):
    """The loop's own classes and functions from the training script, compiled into `namespace`."""
    tree = ast.parse(text, filename)
    body = [n for n in tree.body
            if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in LOOP_NAMES]
    found = {n.name for n in body}
    if found != set(LOOP_NAMES):
        raise SystemExit(f"{filename}: missing {sorted(set(LOOP_NAMES) - found)}")
    exec(compile(ast.Module(body=body, type_ignores=[]), filename, "exec"), namespace)
    return filename


class Proxy:
    """A module with some attributes replaced."""

    def __init__(self, module, **overrides):
        self._module, self._overrides = module, overrides

    def __getattr__(self, name):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._module, name)


class Queue:
    """Hands out given draws in order and checks that all were taken."""

    def __init__(self, name, items):
        self.name, self.items, self.taken = name, list(items), 0

    def next(self):
        if self.taken >= len(self.items):
            raise RuntimeError(f"{self.name}: drawn more than the {len(self.items)} injected")
        self.taken += 1
        return self.items[self.taken - 1]

    def check(self):
        if self.taken != len(self.items):
            raise RuntimeError(f"{self.name}: {self.taken} of {len(self.items)} injected draws used")


def main():
    out = ref_common.start(__doc__, "numpy", "torch", "safetensors.torch", "einops")
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from safetensors.torch import save_file
    torch.set_num_threads(2)

    with tempfile.TemporaryDirectory(prefix="sefar-official-step-") as root:
        ref_common.copy_official(root)
        vit = ref_common.import_official(root)
        text, filename = training_script()

        node = types.SimpleNamespace
        model = ref_common.official_model(vit, CROP, VIEWS, CLASSES)
        # Off the official initialisation (zero time_embed and temporal_fc, identity norms) so that
        # every parameter matters; the teacher (an EMA of earlier students) a little further off.
        ref_common.perturb(model, 0.05)
        teacher = copy.deepcopy(model)
        ref_common.perturb(teacher, 0.02)
        with torch.no_grad():
            teacher.fc.weight.mul_(8.0)  # a more confident teacher: eta spread over (0, 1)
        ref_common.save_state(model, os.path.join(out, "student.safetensors"))
        ref_common.save_state(teacher, os.path.join(out, "teacher.safetensors"))

        # The student without its random layers (see the module docstring).
        model.dropout.p = 0.0
        for m in model.modules():
            if type(m).__name__ == "DropPath":
                m.drop_prob = 0.0

        # Batches and draws.
        gen = torch.Generator().manual_seed(1)
        labeled = [torch.randn(LABELED, 3, t, CROP, CROP, generator=gen) for t in VIEWS]
        labels = torch.randint(0, CLASSES, (LABELED,), generator=gen)
        weak = [torch.randn(UNLABELED, 3, t, CROP, CROP, generator=gen) for t in VIEWS]
        strong = [torch.randn(UNLABELED, 3, t, CROP, CROP, generator=gen) for t in VIEWS]
        rng = np.random.default_rng(2)
        lam = float(rng.beta(10.0, 10.0))
        kept = int(lam * PATCHES)
        tube = np.zeros((len(VIEWS), PATCHES), dtype=np.uint8)
        for v in range(len(VIEWS)):
            tube[v, rng.permutation(PATCHES)[:kept]] = 1
        perms = torch.stack([torch.randperm(UNLABELED, generator=gen) for _ in VIEWS])
        channel_mask = (torch.rand(len(VIEWS), UNLABELED, 3, generator=gen) >= 0.2).float()
        channel_mask[0, 0] = torch.tensor([1.0, 0.0, 1.0])  # at least one dropped channel
        teacher_mask = (torch.rand(PASSES, UNLABELED, 256, generator=gen) >= 0.5).float()

        # The injections.
        perm_queue = Queue("torch.randperm", list(perms))
        channel_queue = Queue("F.dropout2d", list(channel_mask))
        tube_queue = Queue("np.random.shuffle", list(tube))
        beta_queue = Queue("np.random.beta", [lam])
        teacher_queue = Queue("teacher head dropout", list(teacher_mask))

        def randperm(n, *args, **kwargs):
            p = perm_queue.next()
            assert n == p.numel(), (n, p.numel())
            return p.clone()

        def dropout2d(x, p=0.5, *args, **kwargs):
            assert p == 0.2 and x.dim() == 5, (p, x.shape)
            return x * (channel_queue.next() / (1.0 - p))[:, :, None, None, None]

        def shuffle(a):
            m = tube_queue.next()
            assert a.shape == m.shape and a.sum() == m.sum(), (a.shape, a.sum(), m.sum())
            a[:] = m

        def beta(a, b, *args, **kwargs):
            assert a == b == 10, (a, b)
            return beta_queue.next()

        class InjectedHeadDropout(nn.Module):  # the teacher's nn.Dropout(0.5), masks given
            def forward(self, x):
                return x * (teacher_queue.next() / 0.5)

        teacher.dropout = InjectedHeadDropout()
        # As ModelEma.__init__ makes it: eval mode (stochastic depth off; the loop's enable_dropout
        # then sets its Dropout modules to training), no gradients.
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

        class Optimizer:  # records the gradients; updates nothing
            param_groups = [{"lr": 0.0}]
            grads = {}

            def zero_grad(self):
                for p in model.parameters():
                    p.grad = None

            def step(self):
                Optimizer.grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}

        class Meter:
            def __getattr__(self, name):
                return lambda *args, **kwargs: None

        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # CPU: .cuda() is the identity
        namespace = {
            "np": Proxy(np, random=Proxy(np.random, beta=beta, shuffle=shuffle)),
            "torch": Proxy(torch, randperm=randperm),
            "F": Proxy(F, dropout2d=dropout2d),
            "math": math,
            "losses": node(get_loss_func=lambda name: {"cross_entropy": nn.CrossEntropyLoss}[name]),
            "optim": node(get_epoch_lr=lambda epoch, cfg: cfg.SOLVER.BASE_LR, set_lr=lambda opt, lr: None),
            "misc": node(check_nan_losses=lambda loss: None),
            "metrics": node(topks_correct=lambda preds, labels, ks: [torch.tensor(0.0) for _ in ks]),
            "du": node(),
        }
        code_file = loop_definitions(text, filename, namespace)
        cfg = node(NUM_GPUS=0, NUM_SHARDS=1, GLOBAL_BATCH_SIZE=LABELED,
                   TRAIN=node(BATCH_SIZE=LABELED, WARM_EPOCH=WARMUP, BETA=10, GAMMA1=2, GAMMA2=2),
                   SOLVER=node(MAX_EPOCH=EPOCHS, BASE_LR=0.005),
                   DATA=node(SAMPLE_FRAMES=VIEWS, TRAIN_CROP_SIZE=CROP, MULTI_LABEL=False),
                   MODEL=node(LOSS_FUNC="cross_entropy"), DETECTION=node(ENABLE=False))
        train_loader = [([v.clone() for v in labeled], None, labels.clone(), None, {})]
        unlabel_loader = [([v.clone() for v in weak], [v.clone() for v in strong], None, None, None)]
        model_ema = node(ema=teacher, update=lambda m: None)  # ModelEma, as far as the step uses it

        # The loop's locals when it returns.
        captured = {}

        def profile(frame, event, arg):
            if event == "return" and frame.f_code.co_name == "ssl_train_epoch" and \
                    frame.f_code.co_filename == code_file:
                captured.update(frame.f_locals)

        sys.setprofile(profile)
        try:
            namespace["ssl_train_epoch"](train_loader, unlabel_loader, model, model_ema, Optimizer(), None,
                                         Meter(), EPOCH, cfg)
        finally:
            sys.setprofile(None)
        for q in (perm_queue, channel_queue, tube_queue, beta_queue, teacher_queue):
            q.check()

        # What the loop's "reverse" did to the fine views: [B, C, T, H, W].flip(dims=(1,)).
        temporal = captured["strong_temporal"]
        for i in range(len(VIEWS) - 1):
            assert torch.equal(temporal[i], strong[i].flip(1)), "fine view is not the channel flip"
            assert not torch.equal(temporal[i], strong[i].flip(2))
        assert torch.equal(temporal[-1], strong[-1])

        pos = Optimizer.grads["vit.model.pos_embed"]
        grid = int(round(math.sqrt(pos.size(1) - 1)))
        dim = pos.size(2)
        other = pos[0, 1:].transpose(0, 1).reshape(1, dim, grid, grid)
        read = F.interpolate(other, size=(CROP // 16, CROP // 16), mode="nearest")
        skipped = other.abs().sum() - read.abs().sum()
        assert skipped.abs() <= 1e-6 * other.abs().sum(), "pos_embed grid positions outside the resize"
        Optimizer.grads["vit.model.pos_embed"] = torch.cat(
            [pos[:, :1], read.flatten(2).transpose(1, 2)], 1)

        inputs = {"labels": labels, "lambda": torch.tensor(lam, dtype=torch.float64),
                  "tube_mask": torch.from_numpy(tube), "perm": perms, "channel_mask": channel_mask,
                  "teacher_mask": teacher_mask, "epoch": torch.tensor([EPOCH, WARMUP, EPOCHS])}
        for i in range(len(VIEWS)):
            inputs[f"labeled.{i}"] = labeled[i]
            inputs[f"weak.{i}"] = weak[i]
            inputs[f"strong_official.{i}"] = temporal[i]
            inputs[f"strong_time.{i}"] = strong[i].flip(2) if i < len(VIEWS) - 1 else strong[i]
        save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(out, "inputs.safetensors"))

        scalar = lambda x: torch.tensor(float(x.detach() if torch.is_tensor(x) else x),  # noqa: E731
                                        dtype=torch.float64)
        results = {"mean_prob": captured["pseudo_label"], "std_prob": captured["probs_std"],
                   "eta": captured["mask"], "loss_sup": scalar(captured["loss_label"]),
                   "loss_un": scalar(captured["loss_un"]), "loss_mix": scalar(captured["loss_mix"]),
                   "loss": scalar(captured["loss"])}
        for k, g in Optimizer.grads.items():
            results["grad." + k] = g
        save_file({k: v.detach().contiguous() for k, v in results.items()},
                  os.path.join(out, "official.safetensors"))
        eta = captured["mask"]
        print(f"official ssl_train_epoch, one step (SeFAR-S {CROP} px, views {VIEWS}, {LABELED}+{UNLABELED} "
              f"clips, K={PASSES}, torch {torch.__version__}): L={float(captured['loss']):.6f} "
              f"L_sup={float(captured['loss_label']):.6f} L_un={float(captured['loss_un']):.6f} "
              f"L_mix={float(captured['loss_mix'].detach()):.6f}, eta {[round(float(e), 4) for e in eta]}, "
              f"lambda {lam:.4f} ({kept} of {PATCHES} patches); the fine views' 'reverse' is "
              f"strong.flip(dims=(1,)) on [B, C, T, H, W]: the channel order, not time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
