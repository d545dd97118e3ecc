"""Reference outputs of timm's ViT-S/16 for test_pretrained (run with .venv's python).

    timm_ref.py OUT_DIR

Builds timm.create_model('vit_small_patch16_224', pretrained=False) (random weights: nothing is
downloaded), moves every parameter off its initial value (biases and LayerNorms start at their
identity there), and writes OUT_DIR/vit.safetensors (its state dict, timm's naming) and
OUT_DIR/reference.safetensors: "images" [2, 3, 224, 224] and "cls", the CLS token of
forward_features on them in eval mode (after the final norm) [2, 384].

Exit status 3 with a line starting "skip:" when torch, timm or safetensors is missing
(bash scripts/setup_python.sh test reference installs them).
"""

import os
import sys

sys.dont_write_bytecode = True  # importing ref_common leaves no __pycache__ in tests/
import ref_common  # noqa: E402


def main():
    out = ref_common.start(__doc__, "torch", "timm", "safetensors.torch")
    import torch
    import timm
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False)
    ref_common.perturb(model, 0.05)
    model.eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        cls = model.forward_features(images)[:, 0]
    ref_common.save_state(model, os.path.join(out, "vit.safetensors"))
    save_file({"images": images, "cls": cls.contiguous()}, os.path.join(out, "reference.safetensors"))
    print(f"timm {timm.__version__} vit_small_patch16_224, torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
