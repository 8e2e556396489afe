"""Operations per phase of a decoding step: how many torch operations (views left out; on a
GPU each is about one kernel launch) the embedded pair's steps run, for the target alone, the
feature head's chain and its trees. Runs on the CPU with the static engine, no GPU needed; the
median over a run's steps, then each phase's operations by name for the first step.
Usage: python scripts/step_ops.py [METHOD ...]   (target, chain, or a tree: 4,2,1,1 dynamic:32:6)
"""

import collections
import statistics
import sys

from torch.utils._python_dispatch import TorchDispatchMode

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.engines import phases

VIEWS = {"view", "_unsafe_view", "reshape", "expand", "transpose", "t", "slice", "select",
         "unsqueeze", "squeeze", "permute", "as_strided", "alias", "detach", "split", "chunk",
         "split_with_sizes", "unbind", "lift_fresh", "_reshape_alias"}
PROMPT = "Explain why the sky is blue."


class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in VIEWS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    methods = sys.argv[1:] or ["target", "chain", "4,2,1,1", "dynamic:32:6"]
    counts: dict[str, list[int]] = collections.defaultdict(list)
    first: dict[str, collections.Counter] = {}
    run_phase = phases.EagerPhases.run

    def counted(self, key, fn, fuse=False):
        with Count() as c:
            out = run_phase(self, key, fn)
        counts[key[0]].append(sum(c.ops.values()))
        first.setdefault(key[0], c.ops)
        return out

    phases.EagerPhases.run = counted
    pair = load_pair("embedded:smollm2-135m-instruct")
    base = dict(max_new_tokens=24, engine="static", trace_detail=False)
    for method in methods:
        counts.clear()
        first.clear()
        if method == "target":
            target_only_decode(pair, PROMPT, DecodeConfig(**base))
        elif method == "chain":
            speculative_decode(pair, PROMPT, DecodeConfig(gamma=3, drafter="feature-head",
                                                          **base))
        else:
            speculative_decode(pair, PROMPT, DecodeConfig(tree=method, drafter="feature-head",
                                                          **base))
        print(f"{method}: " + ", ".join(f"{k} {statistics.median(v):.0f}"
                                        for k, v in counts.items()) + " operations per step")
        for phase, ops in first.items():
            print(f"   {phase}: " + ", ".join(f"{k} {n}" for k, n in ops.most_common(12)))


if __name__ == "__main__":
    main()
