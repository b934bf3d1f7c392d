"""torch.optim baselines, registered under the names the configs use.

The algorithm coincides with the papers' definitions, so the reference implementation is
used directly: heavy ball is SGD with momentum (PyTorch convention m <- beta m + g,
w <- w - lr m), Nesterov is SGD(nesterov=True), AMSGrad is Adam(amsgrad=True), GD is SGD
run on the full batch (``train.batch_size: full``).
"""
import torch

from optimizers import register

register("sgd", torch.optim.SGD)
register("gd", torch.optim.SGD)
register("heavy_ball", torch.optim.SGD)
register("nesterov", torch.optim.SGD)
register("adam", torch.optim.Adam)
register("adamw", torch.optim.AdamW)
register("amsgrad", torch.optim.Adam)
register("adagrad", torch.optim.Adagrad)
register("lbfgs", torch.optim.LBFGS)
