"""Reads a folder of TensorBoard event files with tensorboard's own reader and prints what it holds as
JSON, for tests/test_tensorboard.cpp:

  {"scalars": {tag: [[step, value], ...]},
   "histograms": {tag: [{"step", "min", "max", "num", "sum", "sum_squares", "bucket_limit", "bucket"}]},
   "texts": {tag: [[step, text], ...]},
   "files": {name: number of records read}}

EventAccumulator checks every record's CRCs and drops what fails (and what follows in that file), and
applies the session-start purge of a resumed run's file, as the TensorBoard dashboard does.

Usage: python tests/tb_read.py FOLDER
"""

import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader


def main():
    folder = sys.argv[1]
    keep_all = {
        event_accumulator.SCALARS: 0,
        event_accumulator.HISTOGRAMS: 0,
        event_accumulator.TENSORS: 0,
    }
    acc = event_accumulator.EventAccumulator(folder, size_guidance=keep_all)
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}, "texts": {}, "files": {}}
    for tag in tags[event_accumulator.SCALARS]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in tags[event_accumulator.HISTOGRAMS]:
        out["histograms"][tag] = [
            {
                "step": e.step,
                "min": e.histogram_value.min,
                "max": e.histogram_value.max,
                "num": e.histogram_value.num,
                "sum": e.histogram_value.sum,
                "sum_squares": e.histogram_value.sum_squares,
                "bucket_limit": list(e.histogram_value.bucket_limit),
                "bucket": list(e.histogram_value.bucket),
            }
            for e in acc.Histograms(tag)
        ]
    for tag in tags[event_accumulator.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        out["texts"][tag] = [
            [e.step, e.tensor_proto.string_val[0].decode("utf-8")] for e in acc.Tensors(tag)
        ]
    for name in sorted(os.listdir(folder)):
        if "tfevents" in name:
            loader = event_file_loader.EventFileLoader(os.path.join(folder, name))
            out["files"][name] = sum(1 for _ in loader.Load())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
