"""Reference outputs of the official SeFAR model for test_pretrained (run with .venv's python).

    official_ref.py OUT_DIR

Builds the official multi_granular_vit (SeFAR-S: vit_small_patch16_224_mix) on the CPU with random
weights, writes OUT_DIR/checkpoint.pyth the way the official trainer's save_checkpoint does (a dict
of epoch, model_state, optimizer_state and cfg; the state dict's keys prefixed "module." as when the
model was wrapped in DistributedDataParallel), fixed input views OUT_DIR/inputs.safetensors
(views.0, views.1, ...) and the model's logits on them in eval mode, OUT_DIR/expected.safetensors.

The official code is not part of this repository: SEFAR_OFFICIAL_SRC names a checkout or a git
directory of it, whose model files ref_common.py copies and imports. einops, which the forward pass
uses, comes from scripts/requirements/reference.txt.

Exit status 3 with a line starting "skip:" when PyTorch, einops or the official code is missing.
"""

import os
import sys
import tempfile

sys.dont_write_bytecode = True  # importing ref_common leaves no __pycache__ in tests/
import ref_common  # noqa: E402


def main():
    out = ref_common.start(__doc__, "torch", "safetensors.torch", "einops")
    import torch
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="sefar-official-") as root:
        ref_common.copy_official(root)
        vit = ref_common.import_official(root)
        crop, views, classes = 112, [2, 2, 4], 7
        model = ref_common.official_model(vit, crop, views, classes)
        # The official initialisation leaves time_embed and most temporal_fc at zero and every bias
        # and LayerNorm at its identity; move every parameter off it so that each one matters.
        ref_common.perturb(model, 0.05)
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
