"""Writes the spatial part of a sefar model's backbone in timm's ViT naming, the form an ImageNet
checkpoint has, so that `pretrained=` initialises a model from it exactly as from ImageNet weights:
spatial weights as they are, temporal attention copied from the spatial one, temporal_fc zero after
block 0, time embeddings and fusion head from scratch (docs/PRETRAINED.md).

    python3 bench/ssl/spatial_backbone.py RUN/model.safetensors OUT.safetensors

Standard library only: a safetensors file is an 8-byte little-endian header length, a JSON header
(name -> dtype, shape, byte offsets) and the bytes."""
import json, os, struct, sys

PREFIX = "vit.model."


def spatial_name(key):
    """timm's name for a sefar backbone tensor, or None for what an ImageNet ViT lacks."""
    if not key.startswith(PREFIX):
        return None  # the fusion head
    name = key[len(PREFIX):]
    if name.startswith("time_embed.") or ".temporal_" in name:
        return None  # the temporal branch: not in an image model
    return name


def main(src, dst):
    with open(src, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    out_header, chunks, offset = {}, [], 0
    for key, entry in sorted(header.items()):
        name = None if key == "__metadata__" else spatial_name(key)
        if name is None:
            continue
        begin, end = entry["data_offsets"]
        chunks.append(data[begin:end])
        out_header[name] = {"dtype": entry["dtype"], "shape": entry["shape"], "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    if not out_header:
        sys.exit(f"{src}: no backbone tensors (vit.model.*) in it")
    blob = json.dumps(out_header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    tmp = f"{dst}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))
    os.replace(tmp, dst)
    print(f"{dst}: {len(out_header)} spatial tensors of {src}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: spatial_backbone.py MODEL.safetensors OUT.safetensors")
    main(sys.argv[1], sys.argv[2])
