import os

import torch

# Tiny test models run fastest on one thread, and several test processes (browser tests
# start a server) then do not fight over the two cores.
torch.set_num_threads(int(os.environ.get("SPECVIZ_TEST_THREADS", "1")))
